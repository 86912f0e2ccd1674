"""Write the YAML experiment files of the paper's grid: python configs/generate.py

One file per dataset x task x method under configs/<dataset>/. The files are committed; tests check that they
match this script and that each one loads and resolves.
"""

from __future__ import annotations

from pathlib import Path

import yaml

DATASETS = {"div2k": "DIV2K (800 training images)", "urban100": "Urban100 (first 90 images)",
            "ct": "CT slices (grayscale, repeated to RGB)"}
TASKS = {
    "deblurring_gaussian_r1": ("Gaussian blur, std 1 px (7x7)", {"task": "deblurring", "kernel": "Gaussian_R1"}),
    "deblurring_gaussian_r2": ("Gaussian blur, std 2 px (13x13)", {"task": "deblurring", "kernel": "Gaussian_R2"}),
    "deblurring_gaussian_r3": ("Gaussian blur, std 3 px (19x19)", {"task": "deblurring", "kernel": "Gaussian_R3"}),
    "deblurring_box_r2": ("box blur, 5x5", {"task": "deblurring", "kernel": "Box_R2"}),
    "deblurring_box_r3": ("box blur, 7x7", {"task": "deblurring", "kernel": "Box_R3"}),
    "deblurring_box_r4": ("box blur, 9x9", {"task": "deblurring", "kernel": "Box_R4"}),
    "sr_x2": ("x2 super-resolution (bicubic, antialiased)", {"task": "sr", "sr_factor": 2}),
    "sr_x4": ("x4 super-resolution (bicubic, antialiased)", {"task": "sr", "sr_factor": 4}),
    # beyond the paper: super-resolution as the optics make it, blur by the system's PSF then decimation
    "sr_x2_gaussian_r1": ("x2 super-resolution with a PSF (Gaussian std 1 px, then decimation)",
                          {"task": "sr", "sr_factor": 2, "kernel": "Gaussian_R1"}),
    "sr_x4_gaussian_r2": ("x4 super-resolution with a PSF (Gaussian std 2 px, then decimation)",
                          {"task": "sr", "sr_factor": 4, "kernel": "Gaussian_R2"}),
}
METHODS = {
    "sei": ("SEI: SURE + scale equivariance, stop-gradient (the paper's method)", {"method": "sei"}),
    "supervised": ("supervised MSE to clean images (needs ground truth)", {"method": "supervised"}),
    "css": ("CSS: supervised on re-degraded measurement pairs", {"method": "css"}),
    "ei_shift": ("EI with circular shifts (SURE + shift equivariance)", {"method": "ei-shift"}),
    "ei_rotate": ("EI with rotations (SURE + rotation equivariance)", {"method": "ei-rotate"}),
    "sei_no_stop_grad": ("ablation: SEI without stop-gradient", {"method": "sei-no-stop-grad"}),
}


def experiment(dataset: str, task: str, method: str) -> tuple[str, dict]:
    task_text, physics = TASKS[task]
    method_text, loss = METHODS[method]
    config = {
        "name": f"{dataset}_{task}_{method}",
        "physics": {**physics, "noise_level": 5},
        "data": {"dataset": dataset, "crop_size": 48, "batch_size": 8},
        "model": {"backbone": "swinir"},
        "loss": {**loss, "alpha": 1.0} if loss["method"] not in ("supervised", "css") else loss,
        "train": {"epochs": 500, "lr": 2.0e-4 if physics["task"] == "sr" else 1.0e-4,
                  "lr_decay_start": 0.5, "lr_final_factor": 0.01, "grad_clip": "none"},  # the paper does not clip
    }
    header = (f"# {DATASETS[dataset]}, {task_text}, noise level 5/255: {method_text}.\n"
              f"# sei train --config configs/{dataset}/{task}_{method}.yaml --download --device cuda\n")
    return header, config


def main() -> None:
    root = Path(__file__).parent
    for dataset in DATASETS:
        for task in TASKS:
            for method in METHODS:
                header, config = experiment(dataset, task, method)
                path = root / dataset / f"{task}_{method}.yaml"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(header + yaml.safe_dump(config, sort_keys=False))


if __name__ == "__main__":
    main()
