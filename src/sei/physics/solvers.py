"""Conjugate gradients for the regularised normal equations of an operator without a closed-form inverse.

An operator diagonalised by the FFT (circular blur) solves ``(I + gamma A^T A) x = b`` in closed form. With a
boundary that does not wrap (``A = C K P``), it does not, and the proximal step of the unrolled network, TV's ADMM
data step and the regularised pseudo-inverse are solved by conjugate gradients on that symmetric positive-definite
system, whose condition number is at most ``1 + gamma ||A||^2``.

Gradients are not taken through the iterations (which would store every iterate and differentiate the solver's
rounding) but implicitly: with ``M = I + gamma A^T A`` and ``x = M^-1 (z + gamma A^T y)``, a gradient ``g`` of
the loss in ``x`` gives ``u = M^-1 g`` (one more solve: ``M`` is symmetric) and

- ``dL/dz = u``, ``dL/dy = gamma A u``, ``dL/dgamma = <u, A^T y - A^T A x>``.

Why not deepinv's ``conjugate_gradient``: it adds ``eps = 1e-8`` to every curvature, which stalls a float64 solve
of this system at a relative residual of about 3e-10 (the gradient checks need 1e-13), and with ``eps = 0`` a
sample of the batch that has converged exactly divides zero by zero while the others go on; here each sample stops
on its own.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["SOLVER_ITERATIONS", "SOLVER_TOLERANCE", "conjugate_gradient", "solver_tolerance", "tikhonov_solve"]

# Relative residual ||b - M x|| / ||b|| at which a solve stops, by dtype: a few units of the dtype's rounding on a
# system whose condition number is in the hundreds, so that the data step is as exact as the closed form.
SOLVER_TOLERANCE = {torch.float64: 1e-13, torch.float32: 1e-6}
# The iteration cap: a condition number of 1e4 converges to 1e-13 in about 1,500 iterations.
SOLVER_ITERATIONS = 3000


def solver_tolerance(dtype: torch.dtype) -> float:
    """The relative residual a solve in ``dtype`` stops at (float32's for anything but float64)."""
    return SOLVER_TOLERANCE.get(dtype, SOLVER_TOLERANCE[torch.float32])


def _batch_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample inner products of ``(B, ...)`` tensors, shape ``(B, 1, ..., 1)``."""
    return (a * b).flatten(1).sum(1).view(-1, *([1] * (a.ndim - 1)))


def conjugate_gradient(apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, tol: float | None = None,
                       max_iter: int = SOLVER_ITERATIONS, start: torch.Tensor | None = None) -> torch.Tensor:
    """Solve ``M x = b`` for a symmetric positive-definite ``M``, each sample of the batch on its own.

    :param apply: ``v -> M v`` on ``(B, ...)`` tensors.
    :param b: right-hand side, ``(B, ...)``.
    :param tol: relative residual ``||b - M x|| / ||b||`` to stop at, per sample (default: by ``b``'s dtype).
    :param max_iter: iteration cap.
    :param start: the first iterate (default 0): a good guess saves iterations.
    :return: ``x`` of ``b``'s shape.

    >>> import torch
    >>> m = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> x = conjugate_gradient(lambda v: v @ m, torch.tensor([[1.0, 2.0]], dtype=torch.float64))
    >>> torch.allclose(x @ m, torch.tensor([[1.0, 2.0]], dtype=torch.float64))
    True
    """
    tol = solver_tolerance(b.dtype) if tol is None else tol
    x = torch.zeros_like(b) if start is None else start.to(b.dtype).clone()
    residual = b.clone() if start is None else b - apply(x)
    direction = residual.clone()
    norm_b = _batch_dot(b, b).sqrt()
    rho = _batch_dot(residual, residual)
    threshold = (tol * norm_b) ** 2
    for _ in range(max_iter):
        active = rho > threshold
        if not bool(active.any()):
            break
        m_direction = apply(direction)
        curvature = _batch_dot(direction, m_direction)
        # samples that have converged (or have b = 0) take no step
        alpha = torch.where(active, rho / torch.where(active, curvature, torch.ones_like(curvature)),
                            torch.zeros_like(rho))
        x = x + alpha * direction
        residual = residual - alpha * m_direction
        rho_next = _batch_dot(residual, residual)
        beta = torch.where(active, rho_next / torch.where(active, rho, torch.ones_like(rho)), torch.zeros_like(rho))
        direction = residual + beta * direction
        rho = rho_next
    return x


class _TikhonovSolve(torch.autograd.Function):
    """``x = (I + gamma A^T A)^-1 (z + gamma A^T y)`` with implicit gradients (see the module's docstring)."""

    @staticmethod
    def forward(ctx, z, y, gamma, forward_op, adjoint_op, tol, max_iter):
        def normal(v: torch.Tensor) -> torch.Tensor:
            return v + gamma * adjoint_op(forward_op(v))

        adjoint_y = adjoint_op(y)
        # the step starts from z, which the solution is near when gamma is small or z nearly consistent with y
        x = conjugate_gradient(normal, z + gamma * adjoint_y, tol, max_iter, start=z)
        ctx.save_for_backward(x, adjoint_y, gamma)
        ctx.operators = (forward_op, adjoint_op, normal, tol, max_iter)
        return x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_x):
        x, adjoint_y, gamma = ctx.saved_tensors
        forward_op, adjoint_op, normal, tol, max_iter = ctx.operators
        u = conjugate_gradient(normal, grad_x, tol, max_iter)
        grad_z = u if ctx.needs_input_grad[0] else None
        grad_y = gamma * forward_op(u) if ctx.needs_input_grad[1] else None
        grad_gamma = None
        if ctx.needs_input_grad[2]:
            grad_gamma = (u * (adjoint_y - adjoint_op(forward_op(x)))).sum_to_size(gamma.shape)
        return grad_z, grad_y, grad_gamma, None, None, None, None


def tikhonov_solve(z: torch.Tensor, y: torch.Tensor, gamma: float | torch.Tensor,
                   forward_op: Callable[[torch.Tensor], torch.Tensor],
                   adjoint_op: Callable[[torch.Tensor], torch.Tensor], tol: float | None = None,
                   max_iter: int = SOLVER_ITERATIONS) -> torch.Tensor:
    """``argmin_x gamma/2 ||A x - y||^2 + 1/2 ||x - z||^2``, by conjugate gradients, differentiable in ``z``, ``y``
    and ``gamma``.

    :param z: ``(B, C, H, W)`` image-shaped point the step is taken from.
    :param y: ``(B, C, h, w)`` measurement.
    :param gamma: step size, a positive number or a tensor broadcastable to ``z`` (a learned one gets its gradient).
    :param forward_op: ``A``, image to measurement; ``adjoint_op``: ``A^T``, its exact adjoint.
    :param tol: relative residual to stop at (default: by dtype, :data:`SOLVER_TOLERANCE`).
    """
    gamma = torch.as_tensor(gamma, dtype=z.dtype, device=z.device)
    if bool((gamma <= 0).any()):
        raise ValueError(f"the proximal step size gamma must be > 0, got {gamma.min().item()}")
    return _TikhonovSolve.apply(z, y.to(z.dtype), gamma, forward_op, adjoint_op,
                                solver_tolerance(z.dtype) if tol is None else tol, max_iter)
