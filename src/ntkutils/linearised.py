"""Gradient descent of a network run to convergence, by its linearised dynamics.

Full-batch gradient descent on ``1/2 ||f(u; w) - y||^2`` (the loss of
:func:`ntkutils.training.fit`) moves the output of a wide network as if the network were
its first-order Taylor expansion at initialisation ``w^0``: the tangent kernel
``Theta = J J^T`` stays at its initial value, and

    z^{t+1} = z^t + lr Theta (y - z^t),   z^0 = f(u; w^0) = f0.

:func:`linearised_gd` evaluates this for every step up to ``10^6`` at once, from the
eigenpairs of the *empirical* kernel of the network as built (exact; Nyström from the
kernel's columns at a few landmark pixels, each column one vector-Jacobian and one
Jacobian-vector product: :func:`ntkutils.empirical.ntk_empirical`; or Lanczos, the same
two products per step applied to ``y - z^0`` instead of a landmark), and stops it with
the oracle and the discrepancy rule of :mod:`ntkutils.stopping`.  Any architecture: the
single-hidden-layer CNN, a deep vanilla CNN, the encoder-decoder with batch norm.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._checks import (
    NTKUtilsError,
    check_bool,
    check_generator,
    check_input_channels,
    check_memory,
    check_net_input,
    check_positive,
    check_sigma,
)
from ._progress import progress_bar
from .empirical import (
    _kernel_times,
    frozen_running_stats,
    ntk_empirical,
    ntk_largest_eigenvalue,
)
from .images import psnr
from .nystrom import landmark_pixels, nystrom_eigenpairs
from .pipeline import _check_target, _Stopped
from .spectral import _check_lr, _check_steps, _gd_filter, eigh_psd
from .stopping import _discrepancy_index, _squared_distance, log_step_grid

__all__ = ["LinearisedGD", "linearised_gd"]


@dataclass(frozen=True)
class LinearisedGD(_Stopped):
    """Linearised gradient descent of one network at every candidate step.

    Returned by :func:`linearised_gd`.  ``T`` candidate steps, ``C`` output channels.

    Attributes
    ----------
    x_hat : torch.Tensor, shape (C, H, W)
        ``z^t`` at the chosen step (float64, not clamped).
    step, index : int
        The chosen step and its position in ``steps``.
    rule : str
        ``"oracle"`` (best PSNR, the clean image was given), ``"discrepancy"`` (``sigma``
        was given) or ``"last"`` (neither).
    steps : torch.Tensor, shape (T,)
        The candidate steps (int64, sorted).
    estimates : torch.Tensor, shape (T, C, H, W)
        ``z^t`` at every candidate step (float64).
    residual : torch.Tensor, shape (T,)
        ``||z^t - y||^2`` summed over the ``d = C H W`` values: twice
        :func:`ntkutils.training.fit`'s loss.
    psnr : torch.Tensor or None, shape (T,)
        PSNR of every ``z^t`` against the clean image in dB (``None`` without it).
    index_discrepancy : int or None
        First index with ``residual <= d sigma^2`` (``None`` without ``sigma``).
    f0 : torch.Tensor, shape (C, H, W)
        ``z^0``: the network's output at initialisation (zeros when ``centred``).
    eigvals, eigvecs : tuple of torch.Tensor
        The kernel's eigenvalues ``(m,)``, descending, and orthonormal eigenvectors: one
        pair ``(C n, m)`` for the joint kernel (output ``(o, i)`` at row ``o n + i``),
        one ``(n, m)`` pair per channel (``"each"``) or one for all (an int).  With
        ``lanczos``: the Ritz pairs of the kernel on the Krylov space of ``y - z^0``.
    lr : float
        The learning rate of gradient descent.
    landmarks : torch.Tensor or None, shape (m,)
        The Nyström landmark pixels ``row * W + col`` (``None`` for the exact kernel).
    """

    estimates: torch.Tensor
    psnr: torch.Tensor | None
    index_discrepancy: int | None
    f0: torch.Tensor
    eigvals: tuple[torch.Tensor, ...]
    eigvecs: tuple[torch.Tensor, ...]
    lr: float
    landmarks: torch.Tensor | None

    @property
    def step_discrepancy(self) -> int | None:
        """The discrepancy rule's step (``None`` without ``sigma``)."""
        i = self.index_discrepancy
        return None if i is None else int(self.steps[i])

    @property
    def psnr_discrepancy(self) -> float | None:
        """PSNR at the discrepancy rule's step (``None`` without ``sigma`` or ``x``)."""
        i = self.index_discrepancy
        return None if i is None or self.psnr is None else float(self.psnr[i])

    @property
    def lambda_max(self) -> float:
        """Largest eigenvalue of the kernel used (over the channels)."""
        return max(float(lam[0]) for lam in self.eigvals)


def linearised_gd(
    model: nn.Module,
    u: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float | None = None,
    steps=None,
    n_landmarks: int | None = None,
    lanczos: int | None = None,
    channels: str | int = "joint",
    centred: bool = False,
    x: torch.Tensor | None = None,
    sigma: float | None = None,
    chunk_size: int = 32,
    generator: torch.Generator | None = None,
) -> LinearisedGD:
    """Gradient descent of a network on one image, linearised at initialisation, at every step.

    Parameters
    ----------
    model : torch.nn.Module
        The network ``f(u; w^0)`` at its initial weights, mapping ``u`` to ``y``'s shape;
        not modified.  Linearised in its current mode: batch norm in training mode (as
        :func:`ntkutils.training.fit` trains) uses the statistics of the image.
    u : torch.Tensor, shape (C_u, H, W)
        The network input (the noisy image, or iid noise), in the model's dtype.
    y : torch.Tensor, shape (C, H, W)
        The noisy target, in the model's dtype.
    lr : float, optional
        Learning rate; default ``1 / lambda_max`` of the tangent kernel of all ``C n``
        outputs, by :func:`ntkutils.empirical.ntk_largest_eigenvalue`: the same step as
        :func:`ntkutils.training.fit`'s default.  Must be ``< 2 / lambda_max`` of the
        kernel used.
    steps : sequence of int or 1-D integer tensor, optional
        Candidate steps; default 0 and 150 log-spaced steps up to ``10^6``
        (:func:`ntkutils.stopping.log_step_grid`).
    n_landmarks : int, optional
        Nyström landmark pixels ``m`` (:func:`ntkutils.nystrom.landmark_pixels`); default
        ``None``, the exact kernel (``n`` Jacobian rows and an ``O(n^3)`` eigensolve).
    lanczos : int, optional
        Lanczos steps ``m`` instead (``channels="joint"`` only; not with
        ``n_landmarks``): the kernel is never formed, each step costs one
        vector-Jacobian and one Jacobian-vector product, as a Nyström column does, and
        the dynamics are exact for the first ``m - 1`` steps and at convergence
        (Notes).  256 steps reproduce the exact kernel's PSNR curve to 0.01 dB on the
        grid's four gradient-descent networks at ``32 x 32`` (seed 0 of the cpu
        grid); larger images and late steps may need more
        (compare ``m`` with ``2 m``; ``docs/notes/linearised-gd.md``).
    channels : {"joint", "each"} or int, default "joint"
        Which kernel of the ``C`` output channels: ``"joint"``, the whole
        ``(C n) x (C n)`` kernel with its cross-channel blocks (Nyström landmarks: the
        same pixels in every channel, ``C m`` columns); ``"each"``, output channel ``o``
        moves with its own block ``Theta_oo`` (cross-channel blocks dropped); an int
        ``o``, the block ``Theta_oo`` of that channel serves every channel (``C`` times
        fewer Jacobian rows; the blocks agree in the infinite-width limit).
    centred : bool, default False
        Train the centred network ``f(u; w) - f(u; w^0)`` (as
        :func:`ntkutils.reproduce.reproduce_grid`'s GD cells do): the same kernel,
        ``f0 = 0``.
    x : torch.Tensor, shape (C, H, W), optional
        The clean image: PSNR of every step, and the step chosen by the ORACLE.
    sigma : float, optional
        Noise level on the [0, 1] scale, for the discrepancy rule.
    chunk_size : int, default 32
        Jacobian rows computed together (:func:`ntkutils.empirical.ntk_empirical`).
    generator : torch.Generator, optional
        Randomness of the landmarks and of the power iteration's start.

    Returns
    -------
    LinearisedGD
        Every ``z^t``, the residual and PSNR curves, the oracle and discrepancy steps,
        the kernel's eigenpairs and the learning rate.

    Notes
    -----
    With ``Theta_oo = V diag(lam) V^T`` the kernel of output channel ``o`` at ``w^0``,
    output channel ``o`` after ``t`` steps of the linearised dynamics is

    .. math:: z^t_o = f0_o + V \\operatorname{diag}\\big(1 - (1 - lr\\,\\lambda_i)^t\\big)
              V^T (y_o - f0_o).

    What is approximated, against gradient descent of the linearised network
    ``f0 + J (w - w^0)`` on ``1/2 ||f - y||^2`` (a sum, as in ``fit``):

    - nothing for one output channel and the exact kernel (``n_landmarks=None``);
    - nothing either for ``C > 1`` channels with ``channels="joint"``, where ``V`` has
      ``C n`` rows and the formula acts on the flattened ``(C n,)`` output; with
      ``"each"`` or an int, the cross-channel blocks ``Theta_oo'`` (through the shared
      hidden weights) are dropped.  They vanish in expectation over the read-out
      weights and shrink like ``c^{-1/2}`` for the vanilla CNN in the NTK
      parameterisation (about 10% of the diagonal blocks at width 128), but are as
      large as the diagonal blocks for the course's encoder-decoder (width 16, standard
      parameterisation, batch norm): see ``docs/notes/linearised-gd.md``;
    - with Nyström, ``Theta_oo ~ C A^+ C^T``: the part of ``y_o - f0_o`` outside the span
      of ``V`` gets ``lambda = 0``, so it is never fitted and ``z^t`` keeps ``f0`` there;
    - with Lanczos, ``r = y - z^0`` (joint, ``(C n,)``) and ``Q`` ``(C n, m)`` an
      orthonormal basis of the Krylov space ``span{r, Theta r, ..., Theta^{m-1} r}``
      (built by Lanczos with full reorthogonalisation, ``T = Q^T Theta Q`` tridiagonal):
      ``z^t ~ z^0 + Q (I - (I - lr T)^t) Q^T r``.  ``I - (I - lr Theta)^t`` is a
      polynomial of degree ``t`` in ``Theta``, so this is exact for ``t < m``; ``r``
      lies in the span (``Q^T r = ||r|| e_1``), so ``z^t -> y``, as the exact dynamics
      do when ``Theta`` is nonsingular (the course's over-parameterised networks):
      nothing of ``y`` is left out.  Between, the error is at most twice that of the
      best polynomial of degree ``m - 1`` approximating ``1 - (1 - lr lambda)^t`` over
      the kernel's eigenvalues (Saad 1992).  The products run in the model's dtype
      (float32 on a GPU), the basis and ``T`` in float64.  The pairs
      used are the Ritz pairs ``(theta_i, Q s_i)`` of ``T = S diag(theta) S^T``.

    The default ``lr`` comes from the full kernel, whose ``lambda_max`` bounds every
    block's and every Nyström approximation's, so it is stable.  How closely real
    gradient descent follows these dynamics is the lazy-training question: closer the
    wider the network.  Cost: ``2 m`` (Nyström) or ``n`` (exact) Jacobian rows per
    kernel, then ``O(n m^2)`` and ``O(T C n m)``; Lanczos: ``m`` vector-Jacobian and
    ``m`` Jacobian-vector products, ``O(C n m^2)`` to reorthogonalise, ``O(T C n m)``.

    References
    ----------
    A. Jacot, F. Gabriel, C. Hongler, "Neural tangent kernel", NeurIPS 2018.  J. Lee et al.,
    "Wide neural networks of any depth evolve as linear models under gradient descent",
    NeurIPS 2019.  Y. Saad, "Analysis of some Krylov subspace approximations to the
    matrix exponential operator", SIAM J. Numer. Anal. 29 (1992).

    Examples
    --------
    >>> from ntkutils.networks import build_single_layer_cnn
    >>> g = torch.Generator().manual_seed(0)
    >>> net = build_single_layer_cnn(channels=32, generator=g).double()
    >>> y = torch.rand(1, 6, 6, generator=g, dtype=torch.float64)
    >>> run = linearised_gd(net, y, y, steps=[0, 10, 10**6], generator=g)
    >>> bool(torch.equal(run.estimates[0], run.f0)), run.residual[-1].item() < 1e-20
    (True, True)
    >>> fast = linearised_gd(net, y, y, steps=[0, 10, 10**6], lanczos=20, lr=run.lr)
    >>> bool(torch.allclose(fast.estimates, run.estimates, atol=1e-10))
    True
    """
    _check_data(model, u, y, x)
    t = _check_arguments(lr, steps, n_landmarks, lanczos, channels, centred, sigma,
                         chunk_size, generator, y)
    f0 = _initial_output(model, u, y)
    z0 = torch.zeros_like(f0) if centred else f0
    C, H, W = y.shape
    landmarks = (None if n_landmarks is None
                 else landmark_pixels((H, W), n_landmarks, generator=generator))
    if lanczos is None:
        pairs = _kernel_eigenpairs(model, u, channels, landmarks, C, H * W, chunk_size)
    else:
        pairs = [_lanczos_pairs(model, u, y.detach().to(torch.float64) - z0, lanczos)]
    if lr is None:
        lr = 1.0 / ntk_largest_eigenvalue(model, u, generator=generator)
    lr = _check_lr(lr, torch.cat([lam for lam, _ in pairs]))
    z = _trajectory(y.detach().to(torch.float64), z0, pairs, t, lr)  # (T, C, H, W)
    return _stopped(z, y, x, sigma, t, z0, pairs, lr, landmarks)


def _check_data(model, u, y, x) -> None:
    """The model, its input, the target and the clean image agree in shape and dtype."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_net_input(u, "u")
    check_input_channels(model, u, "u")
    _check_target(u, y, x)
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if dtypes - {u.dtype} or y.dtype != u.dtype:
        raise TypeError(f"u ({u.dtype}), y ({y.dtype}) and the model's weights "
                        f"({', '.join(sorted(map(str, dtypes)))}) must share one dtype; "
                        f"convert them, e.g. model.to(u.dtype)")


def _check_arguments(lr, steps, n_landmarks, lanczos, channels, centred, sigma,
                     chunk_size, generator, y) -> torch.Tensor:
    """The options of :func:`linearised_gd`; returns the sorted candidate steps."""
    C, H, W = y.shape
    if lr is not None:
        check_positive(lr, "lr")
    if n_landmarks is not None:
        check_positive(n_landmarks, "n_landmarks", integer=True)
        if n_landmarks > H * W:
            raise ValueError(f"n_landmarks must be <= the number of pixels H*W = {H * W}, "
                             f"got {n_landmarks} (None: the exact kernel)")
    if isinstance(channels, bool) or not isinstance(channels, (str, int)) \
            or channels not in ("joint", "each", *range(C)):
        raise ValueError(f"channels must be 'joint', 'each' or an output channel in "
                         f"[0, {C}), got {channels!r}")
    if lanczos is not None:
        check_positive(lanczos, "lanczos", integer=True)
        if n_landmarks is not None:
            raise ValueError(f"give n_landmarks (Nyström) or lanczos (Krylov), not both; "
                             f"got n_landmarks={n_landmarks!r} and lanczos={lanczos!r}")
        if channels != "joint":
            raise ValueError(f"lanczos needs channels='joint' (it follows the whole "
                             f"output), got channels={channels!r}")
        if lanczos > C * H * W:
            raise ValueError(f"lanczos must be <= the C*H*W = {C * H * W} outputs, got "
                             f"{lanczos}")
        check_memory(8 * lanczos * C * H * W, f"{lanczos} Lanczos vectors of a "
                     f"{C}x{H}x{W} image", "pass a smaller lanczos")
    check_bool(centred, "centred")
    if sigma is not None:
        check_sigma(sigma, "sigma")
    check_positive(chunk_size, "chunk_size", integer=True)
    check_generator(generator)
    t = log_step_grid(10**6) if steps is None else torch.unique(_check_steps(steps))
    check_memory(8 * len(t) * 2 * y.numel(), f"linearised GD at {len(t)} steps of a "
                 f"{C}x{H}x{W} image", "pass fewer steps (a log-spaced grid)")
    return t


@torch.no_grad()
def _initial_output(model: nn.Module, u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``f(u; w^0)`` in float64, without touching batch norm's running statistics."""
    with frozen_running_stats(model):
        f0 = model(u)
    if f0.shape != y.shape:
        raise ValueError(f"model(u) has shape {tuple(f0.shape)} but y has shape "
                         f"{tuple(y.shape)}; they must match")
    return f0.detach().to(torch.float64)


def _kernel_eigenpairs(model, u, channels, landmarks, C, n, chunk_size) -> list:
    """The eigenpairs the channels move with: one joint pair, one per channel, or one."""
    if channels == "joint":
        if landmarks is not None:  # the same pixels in every channel: (C m,)
            landmarks = (landmarks[None] + n * torch.arange(C)[:, None]).reshape(-1)
        return [_eigenpairs(model, u, None, landmarks, chunk_size)]
    outs = range(C) if channels == "each" else [channels]
    return [_eigenpairs(model, u, o, landmarks, chunk_size) for o in outs]


def _eigenpairs(model, u, channel, landmarks, chunk_size):
    """Eigenpairs (float64) of ``Theta_oo`` of output ``channel`` (``None``: of all
    outputs), exact or Nyström on ``landmarks``."""
    u64 = u.detach().to(torch.float64)
    with frozen_running_stats(model):
        if landmarks is None:
            return eigh_psd(ntk_empirical(model, u64, output_channel=channel,
                                          chunk_size=chunk_size))
        rows = ntk_empirical(model, u64, output_channel=channel, rows=landmarks,
                             chunk_size=chunk_size)  # (m, n) = Theta[S, :]
    return nystrom_eigenpairs(rows.T, landmarks)  # columns (n, m) of a symmetric kernel


def _lanczos_pairs(model, u, r, m):
    """Ritz pairs (float64) of the joint kernel on the Krylov space of ``r`` ``(C, H, W)``:
    ``m`` Lanczos steps with full reorthogonalisation, each one ``J (J^T q)``."""
    r = r.reshape(-1)  # (C n,)
    norm = float(r.norm())
    if norm == 0:
        raise NTKUtilsError("y equals the network's initial output z^0: there is nothing "
                            "for gradient descent to fit")
    Q = r.new_zeros(r.numel(), m)  # (C n, m) orthonormal Lanczos vectors
    alpha, beta = [], []
    q = r / norm
    tol = 100 * torch.finfo(u.dtype).eps  # below it the next vector is rounding noise
    with frozen_running_stats(model):
        out, kernel_times = _kernel_times(model, u)
        for j in progress_bar(range(m), progress=m > 32, desc="Lanczos", leave=False):
            Q[:, j] = q
            w = kernel_times(q.reshape(out.shape).to(out.dtype))  # J J^T q
            w = w.reshape(-1).to(r.dtype)  # (C n,)
            alpha.append(float(q @ w))
            for _ in range(2):  # full reorthogonalisation (twice is enough)
                w = w - Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)
            b = float(w.norm())
            if j + 1 == m or b <= tol * max(abs(a) for a in alpha):
                break  # m steps, or the Krylov space is invariant: exact from here on
            beta.append(b)
            q = w / b
    k = len(alpha)
    T = (torch.diag(torch.tensor(alpha, dtype=r.dtype))
         + torch.diag(torch.tensor(beta[:k - 1], dtype=r.dtype), 1)
         + torch.diag(torch.tensor(beta[:k - 1], dtype=r.dtype), -1))  # (k, k)
    theta, S = torch.linalg.eigh(T)  # ascending
    return theta.flip(0).clamp_min(0).to(r.device), Q[:, :k] @ S.flip(1).to(r.device)


def _trajectory(y, z0, pairs, t, lr) -> torch.Tensor:
    """``z^t`` of every channel: joint, each with its pair, or all with the one pair."""
    C, H, W = y.shape
    lam, V = pairs[0]
    if len(pairs) == 1 and V.shape[0] == H * W:
        return _gd_filter(y, lam, V, t, lr, z0)  # (T, C, H, W)
    if len(pairs) == 1:  # joint: the (C n,) output as one (1, C H, W) image
        z = _gd_filter(y.reshape(1, C * H, W), lam, V, t, lr, z0.reshape(1, C * H, W))
        return z.reshape(len(t), C, H, W)  # (T, C, H, W)
    return torch.cat([_gd_filter(y[o:o + 1], lam, V, t, lr, z0[o:o + 1])
                      for o, (lam, V) in enumerate(pairs)], dim=1)  # (T, C, H, W)


def _stopped(z, y, x, sigma, t, z0, pairs, lr, landmarks) -> LinearisedGD:
    """The curves, the oracle and discrepancy steps, and the result."""
    residual = _squared_distance(z, y.detach().to(torch.float64))  # (T,)
    curve = None if x is None else torch.tensor([psnr(zt, x.detach().to(zt)) for zt in z],
                                                dtype=torch.float64)  # (T,)
    disc = None if sigma is None else _discrepancy_index(residual, y.numel(), sigma)
    if curve is not None:
        rule, index = "oracle", int(torch.argmax(curve))
    elif disc is not None:
        rule, index = "discrepancy", disc
    else:
        rule, index = "last", len(t) - 1
    return LinearisedGD(
        x_hat=z[index], step=int(t[index]), index=index, rule=rule, steps=t, estimates=z,
        residual=residual, psnr=curve, index_discrepancy=disc, f0=z0,
        eigvals=tuple(lam for lam, _ in pairs), eigvecs=tuple(V for _, V in pairs),
        lr=lr, landmarks=landmarks)
