"""The empirical (finite-width) neural tangent kernel ``J J^T`` of a network.

``Theta_ij = sum_theta dz_{o,i}/dtheta dz_{o,j}/dtheta`` over the trainable parameters, at the
current weights, for one output channel ``o``.  Any network: Jacobian rows from
:mod:`torch.func` (vector-Jacobian and Jacobian-vector products).  The single-hidden-layer CNN
(:class:`ntkutils.networks.SingleLayerCNN`, chosen by its type): exact feature products, much
faster.  :mod:`ntkutils.kernels` re-exports :func:`ntk_empirical` next to the closed forms it
converges to.

:func:`ntk_largest_eigenvalue` (re-exported by :mod:`ntkutils.training`, whose gradient
descent takes ``1 / lambda_max`` as its step) finds the largest eigenvalue of the kernel of
all outputs without forming it.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jvp, vjp, vmap

from ._checks import (
    WORK_BYTES,
    check_generator,
    check_index,
    check_input_channels,
    check_memory,
    check_net_input,
    check_positive,
    check_tensor,
)
from ._compat import prepare_jvp
from ._progress import progress_bar
from .networks import SingleLayerCNN, patches

__all__ = ["ntk_empirical", "ntk_largest_eigenvalue"]


def ntk_empirical(
    model: nn.Module,
    u: torch.Tensor,
    *,
    output_channel: int | None = 0,
    rows: torch.Tensor | None = None,
    diagonal: bool = False,
    chunk_size: int = 32,
    method: str = "auto",
) -> torch.Tensor:
    """The empirical (finite-width) NTK ``J J^T`` of one output channel of a network, or of all.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch ``(1, C, H, W)`` to ``(1, C_out, H', W')``, ``n = H' W'``.  It is used as
        it is and not modified; batch norm must be in eval mode (``model.eval()``).
    u : torch.Tensor, shape (C, H, W)
        Network input.  The computation runs in ``u``'s dtype and device: the parameters
        are cast (on the fly, not in place) to them.
    output_channel : int or None, default 0
        Which output channel ``o`` the kernel is of.  ``None``: the joint kernel of all
        ``C_out n`` outputs, output ``(o, i)`` at index ``o * n + i``, with the
        cross-channel blocks (generic method only).
    rows : torch.LongTensor, shape (m,), optional
        Return only these rows ``Theta[rows, :]`` (or diagonal entries); indices in
        ``[0, C_out n)`` when ``output_channel`` is ``None``.
    diagonal : bool, default False
        Return only the diagonal ``Theta_ii = |J_i|^2`` (at ``rows`` if given).
    chunk_size : int, default 32
        Rows of ``J`` computed together by the generic method; memory grows linearly with
        it (about ``chunk_size`` x (parameters + activations of one forward pass) numbers).
    method : {"auto", "generic", "structured"}, default "auto"
        ``"generic"``: :mod:`torch.func` for any model.  ``"structured"``: exact feature
        products for the single-hidden-layer CNN, a
        :class:`ntkutils.networks.SingleLayerCNN` (what
        :func:`ntkutils.networks.build_single_layer_cnn` returns) whose forward pass is
        still ``scale_readout * readout(relu(scale_hidden * hidden(u)))`` (checked on
        ``u``).  ``"auto"`` picks ``"structured"`` for such a model, else ``"generic"``.

    Returns
    -------
    torch.Tensor, shape (n, n), (m, n), (n,) or (m,)
        ``Theta_ij = sum_theta dz_{o,i}/dtheta dz_{o,j}/dtheta`` over every parameter with
        ``requires_grad``, at the current weights (``n`` is ``C_out n`` and ``i``, ``j``
        run over every output when ``output_channel`` is ``None``).

    Notes
    -----
    Generic: for a chunk of rows ``R``, ``J_R`` comes from a vmapped vector-Jacobian product
    with one-hot cotangents.  The full kernel is ``J J^T`` when ``J`` (``n`` x parameters)
    takes at most 1 GiB: ``n`` backward passes.  Otherwise (and with ``rows``)
    ``Theta[R, :] = J J_R^T`` comes from a vmapped Jacobian-vector product with tangents
    ``J_R``, so ``J`` is never stored: ``2 n`` (or ``2 m``) passes.

    Structured, with ``g = s_h (W P^T + b)`` the ``(c, n)`` pre-activations, ``a`` the
    read-out weights of channel ``o`` and patches ``P_i`` (with a 1 appended when the hidden
    layer has a bias)::

        Theta_ij = s_r^2 sum_h relu(g_hi) relu(g_hj)
                 + s_r^2 s_h^2 sum_h a_h^2 relu'(g_hi) relu'(g_hj) <P_i, P_j>
                 + s_r^2 [read-out bias],

    matrix products of ``(n, c)`` features, in chunks of hidden units.  With
    ``s_h = d^{-1/2}``, ``s_r = c^{-1/2}`` it tends to :func:`ntk_closed_form` as ``c -> inf``.

    References
    ----------
    A. Jacot, F. Gabriel and C. Hongler, "Neural tangent kernel", NeurIPS 2018.

    Examples
    --------
    >>> from ntkutils.networks import build_single_layer_cnn
    >>> g = torch.Generator().manual_seed(0)
    >>> net = build_single_layer_cnn(1, channels=16, generator=g)
    >>> u = torch.rand(1, 6, 6, generator=g, dtype=torch.float64)
    >>> fast = ntk_empirical(net, u)
    >>> slow = ntk_empirical(net, u, method="generic")
    >>> fast.shape, bool(torch.allclose(fast, slow))
    (torch.Size([36, 36]), True)
    """
    u = _check_empirical_arguments(model, u, output_channel, diagonal, chunk_size, method)
    structured = method != "generic" and isinstance(model, SingleLayerCNN)
    if method == "structured" and (not structured or output_channel is None):
        raise ValueError(
            "method='structured' needs the single-hidden-layer CNN of "
            "ntkutils.networks.build_single_layer_cnn (a SingleLayerCNN) and one "
            f"output_channel; got a {type(model).__name__} and output_channel="
            f"{output_channel!r}; use method='generic'"
        )
    structured = structured and output_channel is not None
    params, frozen = _split_parameters(model, u)
    with torch.no_grad():
        C_out, n = _flat_output(model, (params, frozen), u).shape
    if structured and not _forward_is_single_layer(model, u, params, frozen):
        if method == "structured":
            raise ValueError(
                f"method='structured': the forward pass of this {type(model).__name__} "
                "is not scale_readout * readout(relu(scale_hidden * hidden(u))); "
                "use method='generic'")
        structured = False
    if output_channel is not None and not 0 <= output_channel < C_out:
        raise ValueError(f"output_channel must be in [0, {C_out}) or None, got "
                         f"{output_channel}")
    pick = slice(None) if output_channel is None else output_channel
    n = n if output_channel is not None else C_out * n  # outputs the kernel is of
    if rows is not None:
        rows = check_index(rows, "rows", n).to(u.device)
    elif not diagonal:
        check_memory(2 * n * n * u.element_size(), f"the full empirical NTK of {n} pixels",
                     "pass rows= for a few rows of it, or diagonal=True")
    if structured:
        return _ntk_structured(model, u, output_channel, rows, diagonal)

    def output(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return _flat_output(model, (p, frozen), u)[pick].reshape(-1)  # (n,) or (C_out n,)

    return _ntk_generic(output, params, u, n, rows, diagonal, chunk_size)


def _check_empirical_arguments(model, u, output_channel, diagonal, chunk_size, method):
    """The arguments of :func:`ntk_empirical` that need no forward pass; returns ``u``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    u = check_net_input(u, "u")
    check_input_channels(model, u, "u")
    if output_channel is not None and (isinstance(output_channel, bool)
                                       or not isinstance(output_channel, int)):
        raise TypeError(f"output_channel must be an int or None, got {output_channel!r}")
    if not isinstance(diagonal, bool):
        raise TypeError(f"diagonal must be True or False, got {diagonal!r}")
    check_positive(chunk_size, "chunk_size", integer=True)
    if method not in ("auto", "generic", "structured"):
        raise ValueError(f"method must be 'auto', 'generic' or 'structured', got {method!r}")
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) \
                and module.training and module.track_running_stats:
            raise ValueError("model has batch norm in training mode, whose running statistics "
                             "cannot be updated inside a Jacobian; call model.eval() first")
    return u


def _split_parameters(model: nn.Module, u: torch.Tensor):
    """``(trainable, rest)``: the parameters with ``requires_grad``, and the other parameters
    with the buffers, detached and cast to ``u``'s dtype and device (integer buffers: device)."""
    params, frozen = {}, {}
    for name, p in model.named_parameters():
        (params if p.requires_grad else frozen)[name] = p.detach().to(u)
    for name, b in model.named_buffers():
        frozen[name] = b.to(u) if b.is_floating_point() else b.to(u.device)
    return params, frozen


def _flat_output(model: nn.Module, tensors, u: torch.Tensor) -> torch.Tensor:
    """``model(u)`` with the parameters and buffers ``tensors``, as ``(C_out, n)``."""
    z = functional_call(model, tensors, (u[None],))  # (1, C_out, H, W)
    return z.reshape(z.shape[1], -1)  # (C_out, n)


@torch.no_grad()
def _forward_is_single_layer(model: SingleLayerCNN, u: torch.Tensor, params: dict,
                             frozen: dict) -> bool:
    """Whether ``model(u)`` is what the feature products of :func:`_ntk_structured` assume.

    Checked with a positive read-out (no cancellation, even for a mirrored network).
    """
    probe = {**frozen, **params}
    probe["readout.weight"] = probe["readout.weight"].abs()
    if model.readout.bias is not None:
        probe["readout.bias"] = probe["readout.bias"].abs()
    z_model = _flat_output(model, probe, u)  # (C_out, n)
    z_features = _single_layer_output(model, u, probe["readout.weight"],
                                      probe.get("readout.bias"))  # (C_out, n)
    tol = 1e-10 if u.dtype == torch.float64 else 1e-4
    return z_features.shape == z_model.shape and bool(torch.allclose(
        z_features, z_model, rtol=tol, atol=tol * float(z_features.max())))


def _single_layer_output(model, u, readout_weight, readout_bias):
    """``scale_readout * readout(relu(scale_hidden * hidden(u)))`` with the given read-out."""
    hidden = model.hidden
    h = torch.relu(model.scale_hidden * F.conv2d(
        u[None], hidden.weight.to(u), None if hidden.bias is None else hidden.bias.to(u),
        padding=hidden.kernel_size[0] // 2))  # (1, c, H, W)
    z = F.conv2d(h, readout_weight, readout_bias)  # (1, C_out, H, W)
    return model.scale_readout * z.reshape(z.shape[1], -1)  # (C_out, n)


def _ntk_structured(model, u, output_channel, rows, diagonal):
    """Exact finite-width NTK of the single-hidden-layer CNN from feature products."""
    hidden, readout = model.hidden, model.readout
    s_h, s_r = float(model.scale_hidden), float(model.scale_readout)
    k = hidden.kernel_size[0]
    P = patches(u, k)  # (n, d)
    grad_cols = []  # d g_h / d (w_h, b_h) = s_h (P_i, 1), for the trainable ones
    if hidden.weight.requires_grad:
        grad_cols.append(P)
    if hidden.bias is not None and hidden.bias.requires_grad:
        grad_cols.append(P.new_ones(P.shape[0], 1))
    P_grad = torch.cat(grad_cols, dim=1) if grad_cols else None  # (n, d or d+1)
    w = hidden.weight.detach().to(u).reshape(hidden.out_channels, -1)  # (c, d)
    b = None if hidden.bias is None else hidden.bias.detach().to(u)  # (c,)
    a2 = readout.weight.detach().to(u)[output_channel, :, 0, 0] ** 2  # (c,)
    sel = slice(None) if rows is None else rows
    n, m = P.shape[0], P.shape[0] if rows is None else rows.numel()
    out = u.new_zeros(m) if diagonal else u.new_zeros(m, n)
    if P_grad is not None:
        gram = (P_grad[sel] ** 2).sum(1) if diagonal else P_grad[sel] @ P_grad.T  # (m,) | (m, n)
    step = max(1, WORK_BYTES // (4 * u.element_size() * n))
    for h0 in range(0, w.shape[0], step):  # chunks of hidden units
        g = s_h * (P @ w[h0:h0 + step].T)  # (n, cc) pre-activations
        if b is not None:
            g = g + s_h * b[h0:h0 + step]
        feat, slope = torch.relu(g), (g > 0).to(u.dtype)  # (n, cc) each
        if readout.weight.requires_grad:  # d z / d a_h = s_r relu(g_h)
            out += (feat[sel] ** 2).sum(1) if diagonal else feat[sel] @ feat.T
        if P_grad is not None:
            # d z / d w_h = s_r a_h relu'(g_h) s_h P_i
            wslope = slope[sel] * a2[h0:h0 + step]  # (m, cc)
            inner = (wslope * slope[sel]).sum(1) if diagonal else wslope @ slope.T
            out += s_h**2 * inner * gram
    out *= s_r**2
    if readout.bias is not None and readout.bias.requires_grad:
        out += s_r**2  # d z / d bias_o = s_r
    return out


def _ntk_generic(output, params: dict, u: torch.Tensor, n: int, rows: torch.Tensor | None,
                 diagonal: bool, chunk_size: int) -> torch.Tensor:
    """``J J^T`` (or its rows, or diagonal) of ``output: params -> (n,)`` with torch.func."""
    prepare_jvp()  # before the first jvp: see ntkutils._compat
    _, vjp_fn = vjp(output, params)
    n_params = sum(p.numel() for p in params.values())
    index = torch.arange(n, device=u.device) if rows is None else rows
    # the full kernel: store J when it is small, else never store it (one JVP per row)
    store_jacobian = rows is None and not diagonal and n * n_params * u.element_size() \
        <= 4 * WORK_BYTES
    blocks = []
    chunks = range(0, index.numel(), chunk_size)
    if len(chunks) > 4:
        chunks = progress_bar(chunks, desc="empirical NTK", leave=False)
    for s in chunks:
        rows_s = index[s:s + chunk_size]
        onehot = u.new_zeros(rows_s.numel(), n)  # (b, n) cotangents
        onehot[torch.arange(rows_s.numel(), device=u.device), rows_s] = 1.0
        grads = vmap(vjp_fn)(onehot)[0]  # {name: (b, *shape)}
        if diagonal:
            blocks.append(sum((g.reshape(g.shape[0], -1) ** 2).sum(1) for g in grads.values()))
        elif store_jacobian:
            blocks.append(torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], 1))
        else:
            def jvp_row(tangent: dict) -> torch.Tensor:
                return jvp(output, (params,), (tangent,))[1]  # (n,)

            blocks.append(vmap(jvp_row)(grads))  # (b, n)
    if store_jacobian:
        J = torch.cat(blocks)  # (n, parameters)
        return J @ J.T
    return torch.cat(blocks)


# ----------------------------------------------------------------------------- lambda_max
@contextmanager
def frozen_running_stats(model: nn.Module) -> Iterator[None]:
    """Batch norm in training mode without updating its running statistics.

    torch.func transforms refuse in-place updates of buffers; the function they see is
    the same (batch statistics), only the bookkeeping is skipped.  For the tangent kernels
    of a network that trains in training mode (:func:`ntk_largest_eigenvalue` and
    :class:`ntkutils.recorders.KernelRecorder`).
    """
    bns = [m for m in model.modules()
           if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
           and m.track_running_stats]
    for m in bns:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in bns:
            m.track_running_stats = True


def _functional(model: nn.Module, net_input: torch.Tensor):
    """``params -> model(net_input)`` for torch.func, and the current trainable params.

    All outputs, in the model's own dtype (unlike :func:`_flat_output`, which casts the
    weights to ``u`` and keeps one channel).
    """
    params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    frozen = {k: p.detach() for k, p in model.named_parameters() if not p.requires_grad}
    buffers = {k: b for k, b in model.named_buffers()}

    def f(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return functional_call(model, ({**p, **frozen}, buffers), (net_input,))

    return f, params


def _kernel_times(model: nn.Module, net_input: torch.Tensor):
    """``(f(u), v -> Theta v)``: ``Theta = J J^T`` times an output-shaped ``v`` without
    forming ``J`` (one vector-Jacobian and one Jacobian-vector product).  Call it and
    its product inside :func:`frozen_running_stats`."""
    f, params = _functional(model, net_input)
    prepare_jvp()  # before the first jvp: see ntkutils._compat
    out, vjp_fn = vjp(f, params)

    def times(v: torch.Tensor) -> torch.Tensor:
        (jt_v,) = vjp_fn(v)  # J^T v, a dict shaped like params
        return jvp(f, (params,), (jt_v,))[1]  # J J^T v, shaped like the output

    return out, times


def ntk_largest_eigenvalue(
    model: nn.Module,
    net_input: torch.Tensor,
    n_iter: int = 100,
    *,
    tol: float = 1e-5,
    generator: torch.Generator | None = None,
) -> float:
    """Largest eigenvalue of the empirical tangent kernel, by power iteration.

    Parameters
    ----------
    model : torch.nn.Module
        The network at its current weights.
    net_input : torch.Tensor
        Its input ``u``, e.g. ``(C, H, W)``.
    n_iter : int
        Maximum number of power iterations (each costs about three forward passes).
    tol : float
        Stop when the estimate changes by less than ``tol`` relatively.
    generator : torch.Generator, optional
        Source of the random starting vector.

    Returns
    -------
    float
        ``lambda_max`` of ``Theta = J J^T``, ``J = d f(u; w) / d w`` over all outputs
        (all channels and pixels).  Gradient descent on ``1/2 ||f - y||^2`` is stable
        for step sizes ``lr < 2 / lambda_max``.

    Notes
    -----
    ``Theta v = J (J^T v)`` is computed without forming ``J``: a vector-Jacobian product
    (:func:`torch.func.vjp`) gives ``J^T v`` in weight space and a Jacobian-vector
    product (:func:`torch.func.jvp`) maps it back to output space.  The iteration
    ``v <- Theta v / ||Theta v||`` returns the Rayleigh quotient ``v^T Theta v``, which
    approaches ``lambda_max`` from below.

    Examples
    --------
    >>> from ntkutils.networks import build_single_layer_cnn
    >>> g = torch.Generator().manual_seed(0)
    >>> net = build_single_layer_cnn(channels=16, generator=g)
    >>> lam = ntk_largest_eigenvalue(net, torch.rand(1, 6, 6, generator=g), generator=g)
    >>> lam > 0
    True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_tensor(net_input, "net_input")
    check_positive(n_iter, "n_iter", integer=True)
    check_positive(tol, "tol")
    check_generator(generator)
    with frozen_running_stats(model):
        z, kernel_times = _kernel_times(model, net_input)
        v = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
        v = v / v.norm()
        lam = 0.0
        for _ in range(n_iter):
            theta_v = kernel_times(v)  # J J^T v, shaped like z
            lam_new = float((v * theta_v).sum())
            v = theta_v / theta_v.norm()
            if abs(lam_new - lam) <= tol * abs(lam_new):
                return lam_new
            lam = lam_new
    return lam
