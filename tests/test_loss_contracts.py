"""The contracts of the losses and of every registered training method (sei.losses.registry).

- SURE agrees in expectation with the true measurement-domain error, for every operator kind and both noise models;
- every method gives a finite scalar loss whose gradient reaches every parameter, is repeatable from its generator,
  works on every operator kind (of volumes too, unless its entry says it is for images only), refuses or accepts missing clean images as its entry says, and computes on a GPU
  what it computes on the CPU;
- stop-gradient stops gradients: a method with it trains only through ``f(A T x_hat + e')``.
"""

from __future__ import annotations

import pytest
import torch
from helpers import OPERATOR_EXAMPLES, crops, fixed_network, relative_difference, seeded

from sei.core.errors import MissingGroundTruthError
from sei.losses import interior
from sei.losses.registry import METHOD_REGISTRY, build_method, method_entry
from sei.core.errors import ShapeError
from sei.losses.sei import SEILoss
from sei.losses.sure import SURE_DIVERGENCES
from sei.physics import PhysicsSpec, resolve_spec
from sei.physics.registry import OPERATORS
from sei.physics.noise import measure

NOISE_MODELS = {
    "gaussian": dict(noise_level=25.0),
    "poisson-gaussian": dict(noise="poisson-gaussian", gain=1 / 30, noise_level=3.0),
}
# One example per operator kind: the losses are checked on each.
KINDS = {kind: examples[0] for kind, examples in OPERATOR_EXAMPLES.items()}
# SURE in expectation on natural images; on volumes it is checked in test_sure.py
IMAGE_KINDS = [kind for kind in KINDS if OPERATORS[kind].spatial_dims == 2]
METHODS = [entry.name for entry in METHOD_REGISTRY]


def operator(words: dict, **noise):
    return resolve_spec(PhysicsSpec(**words, **(noise or {"noise_level": 5.0}))).build()


@pytest.mark.parametrize("divergence", SURE_DIVERGENCES)
@pytest.mark.parametrize("noise", list(NOISE_MODELS))
@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_sure_agrees_with_the_true_error_in_expectation(kind, noise, divergence, natural_image):
    """Mean SURE over measurement crops and noise draws against the mean true error ``||A f(y) - A x||^2`` on the
    same interior; the plain residual (SURE without its divergence) is far off, so the test can fail."""
    physics = operator(KINDS[kind], **NOISE_MODELS[noise])
    r, margin = physics.upscale, physics.margin
    x = natural_image[None, :, : 96 // r * r, : 128 // r * r]
    model, sure_loss = fixed_network(r), build_method("sure", divergence=divergence)
    clean = physics.A(x)
    generator = seeded(0)
    sure, truth, naive = [], [], []
    for _ in range(8):
        y_crops, clean_crops = crops(measure(physics, x, generator), 16), crops(clean, 16)
        with torch.no_grad():
            output = sure_loss(model, physics, y_crops, generator=generator)
            error = interior(physics.A(output.estimate) - clean_crops, margin).pow(2).mean()
        sure.append(output.parts["sure"])
        truth.append(error)
        naive.append(output.parts["sure_residual"])
    sure, truth, naive = (torch.stack(values).mean().item() for values in (sure, truth, naive))
    assert sure == pytest.approx(truth, rel=0.06)
    assert abs(naive - truth) / truth > 0.2


@pytest.mark.parametrize("method", METHODS)
class TestMethodContract:
    @pytest.mark.parametrize("kind", list(KINDS))
    def test_a_finite_loss_whose_gradient_reaches_every_parameter(self, method, kind):
        physics = operator(KINDS[kind])
        dims = physics.spec.spatial_dims
        model = fixed_network(physics.upscale, dims).train()
        y, x = batch(physics)
        if dims == 3 and not method_entry(method).volumes:
            with pytest.raises(ShapeError, match="images"):
                build_method(method)(model, physics, y, x, generator=seeded(3))
            return
        output = build_method(method)(model, physics, y, x, generator=seeded(3))
        assert output.loss.ndim == 0 and torch.isfinite(output.loss)
        assert all(part.ndim == 0 and not part.requires_grad for part in output.parts.values())
        output.loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())

    def test_repeatable_from_its_generator(self, method):
        physics = operator(KINDS["blur"])
        model = fixed_network()
        y, x = batch(physics)
        first = build_method(method)(model, physics, y, x, generator=seeded(3)).loss
        again = build_method(method)(model, physics, y, x, generator=seeded(3)).loss
        other = build_method(method)(model, physics, y, x, generator=seeded(4)).loss
        assert torch.equal(first, again)
        if method != "supervised":  # the only method that draws nothing
            assert not torch.equal(first, other)

    def test_clean_images_as_its_entry_says(self, method):
        physics = operator(KINDS["blur"])
        y, _ = batch(physics)
        if method_entry(method).needs_ground_truth:
            with pytest.raises(MissingGroundTruthError, match="clean images"):
                build_method(method)(fixed_network(), physics, y, generator=seeded(3))
        else:
            assert torch.isfinite(build_method(method)(fixed_network(), physics, y, generator=seeded(3)).loss)

    @pytest.mark.parametrize("kind", ["blur", "bicubic"])
    def test_the_device_computes_what_the_cpu_computes(self, method, kind, device):
        results = []
        for where in (torch.device("cpu"), device):
            physics = operator(KINDS[kind]).to(where)
            model = fixed_network(physics.upscale).train().to(where)
            y, x = (t.to(where) for t in batch(physics))
            loss = build_method(method)(model, physics, y, x, generator=seeded(3)).loss
            loss.backward()
            results.append((loss, [p.grad for p in model.parameters()]))
        (loss_cpu, grads_cpu), (loss_device, grads_device) = results
        assert relative_difference(loss_device, loss_cpu) < 1e-4
        for grad_device, grad_cpu in zip(grads_device, grads_cpu):
            assert relative_difference(grad_device, grad_cpu) < 1e-3


def batch(physics, size: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Measurements of random images (volumes of 8 planes for an operator of volumes) and the images, for one method
    evaluation."""
    depth = (8,) if physics.spec.spatial_dims == 3 else ()
    x = torch.rand(2, 3, *depth, size * physics.upscale, size * physics.upscale, generator=seeded(1))
    return physics(x, generator=seeded(2)), x


def _with_stop_gradient(name: str) -> bool:
    method = build_method(name)
    return isinstance(method, SEILoss) and method.transform is not None and method.stop_gradient


EQUIVARIANT = [entry.name for entry in METHOD_REGISTRY if _with_stop_gradient(entry.name)]


@pytest.mark.parametrize("method", EQUIVARIANT)
def test_stop_gradient_trains_only_through_the_second_evaluation(method):
    """With stop-gradient, the gradient of the equivariance term is that of a loss whose target ``T x_hat`` is a
    constant; without it, the target carries gradient too, and the two differ."""
    physics = operator(KINDS["blur"])
    y, _ = batch(physics)
    gradients = {}
    for stop in (True, False):
        model = fixed_network().train()
        loss = build_method(method, stop_gradient=stop)
        _equivariance_only(loss, model, physics, y).backward()
        gradients[stop] = [p.grad.clone() for p in model.parameters()]
        if stop:  # the same term with the target computed by hand, detached, gives the same gradient
            model.zero_grad()
            _equivariance_with_constant_target(loss, model, physics, y).backward()
            assert all(torch.allclose(a, p.grad, atol=1e-10, rtol=1e-6)
                       for a, p in zip(gradients[stop], model.parameters()))
    assert any(not torch.allclose(a, b) for a, b in zip(gradients[True], gradients[False]))


def _equivariance_only(loss: SEILoss, model, physics, y) -> torch.Tensor:
    """The equivariance term of ``loss`` alone, drawn from a fixed generator."""
    from sei.losses import equivariance_loss

    estimate = model(y)
    term, _ = equivariance_loss(model, physics, estimate, loss.transform, seeded(5), alpha=loss.alpha,
                                stop_gradient=loss.stop_gradient)
    return term


def _equivariance_with_constant_target(loss: SEILoss, model, physics, y) -> torch.Tensor:
    """The same term written with the target as a constant: ``T x_hat`` detached, from the same draws."""
    generator = seeded(5)
    with torch.no_grad():
        target = loss.transform(model(y), generator)
    return loss.alpha * (model(measure(physics, target, generator)) - target).pow(2).mean()
