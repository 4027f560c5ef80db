"""Networks: the single-hidden-layer CNN of the theory, a vanilla CNN, an encoder-decoder.

Every factory returns an ordinary :class:`torch.nn.Module` whose ``forward`` accepts an
image ``(C, H, W)`` or a batch ``(B, C, H, W)`` and returns the same rank.  Weights are
drawn from an explicit ``generator``, so a seeded build is reproducible.

Two parameterisations (``parameterization=``):

``"ntk"``
    Every weight (and bias) is drawn from ``N(0, 1)`` and each convolution's output is
    multiplied by ``fan_in ** -0.5`` in ``forward``, where ``fan_in`` is the number of
    inputs of one unit (``C_in * k * k``).  This is the parameterisation in which the
    neural tangent kernel has a width-independent limit; it is the course's shared
    contract with :func:`ntkutils.kernels.ntk_closed_form`.
``"standard"``
    PyTorch's default initialisation of :class:`torch.nn.Conv2d` (weights and biases
    uniform on ``[-fan_in ** -0.5, fan_in ** -0.5]``), drawn from ``generator``, and no
    scaling in ``forward``.  Used for the Adam experiments of chapter 6.

:func:`build_single_layer_cnn` returns a :class:`SingleLayerCNN`; that type is what
:func:`ntkutils.kernels.ntk_empirical` recognises for its structured (feature-product) NTK,
which reads these attributes::

    model.hidden            nn.Conv2d(C, c, k, padding=k // 2, bias=bias)
    model.readout           nn.Conv2d(c, C, 1, bias=bias)
    model.scale_hidden      float, d ** -0.5 with d = C * k * k ("ntk") or 1.0 ("standard")
    model.scale_readout     float, c ** -0.5 ("ntk") or 1.0 ("standard")
    model.parameterization  "ntk" or "standard"
    model.patch_size        k;  model.in_channels  C;  model.channels  c

and ``forward(u) = scale_readout * readout(relu(scale_hidden * hidden(u)))``; the scales
are applied in ``forward`` only (``hidden`` and ``readout`` are plain convolutions), and a
bias sits inside its convolution, so it is scaled with the weights.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_generator, check_memory, check_patch_size, check_positive

__all__ = [
    "SingleLayerCNN",
    "build_single_layer_cnn",
    "build_vanilla_cnn",
    "build_autoencoder",
    "count_parameters",
]

_PARAMETERIZATIONS = ("ntk", "standard")


# ----------------------------------------------------------------------------- helpers
def _check_parameterization(value: object) -> str:
    if value not in _PARAMETERIZATIONS:
        raise ValueError(
            f"parameterization must be 'ntk' or 'standard', got {value!r}"
        )
    return value  # type: ignore[return-value]


def _check_channels(value: object, name: str) -> int:
    check_positive(value, name, integer=True)
    return value  # type: ignore[return-value]


def _init_conv(
    conv: nn.Conv2d, parameterization: str, generator: torch.Generator | None
) -> float:
    """Draw ``conv``'s weights in place and return the scale ``forward`` applies."""
    fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    with torch.no_grad():
        if parameterization == "ntk":
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator))
            if conv.bias is not None:
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=generator))
            return fan_in**-0.5
        # PyTorch's default for nn.Conv2d (kaiming_uniform with a = sqrt(5)), seeded.
        bound = fan_in**-0.5
        conv.weight.copy_(
            (2 * torch.rand(conv.weight.shape, generator=generator) - 1) * bound
        )
        if conv.bias is not None:
            conv.bias.copy_(
                (2 * torch.rand(conv.bias.shape, generator=generator) - 1) * bound
            )
        return 1.0


def _check_size(n_params: int, what: str) -> None:
    """Refuse a network whose weights (and Adam's two moments) cannot fit in memory."""
    itemsize = torch.empty((), dtype=torch.get_default_dtype()).element_size()
    check_memory(3 * n_params * itemsize, f"{what} with {n_params:.3g} weights",
                 "choose fewer channels")


def patches(u: torch.Tensor, k: int) -> torch.Tensor:
    """The zero-padded ``k x k`` patches ``P_i(u)`` of ``u`` ``(C, H, W)``: ``(n, C k^2)``.

    Row ``i = row * W + col`` is what a first-layer unit at pixel ``i`` sees, in the order of
    a ``Conv2d`` weight, so that ``conv2d(u, w, padding=k // 2)`` at ``i`` is
    ``<w.flatten(), P_i(u)>``.  Unchecked: the checked, documented form is
    :func:`ntkutils.kernels.extract_patches`.
    """
    cols = F.unfold(u[None], kernel_size=k, padding=k // 2)  # (1, C*k*k, n)
    return cols[0].T  # (n, C*k*k)


class _ImageNetwork(nn.Module):
    """A network of images: ``forward`` takes ``(C, H, W)`` or a batch ``(B, C, H, W)``.

    Subclasses set ``in_channels`` and write ``forward_batch``, from ``(B, C, H, W)``.
    """

    in_channels: int

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if u.ndim not in (3, 4) or u.shape[-3] != self.in_channels:
            c = self.in_channels
            raise ValueError(
                f"the network input must have {c} channels, shape ({c}, H, W) "
                f"or (B, {c}, H, W), got {tuple(u.shape)}"
            )
        z = self.forward_batch(u.unsqueeze(0) if u.ndim == 3 else u)  # (B, C_out, H, W)
        return z.squeeze(0) if u.ndim == 3 else z

    def forward_batch(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _ScaledConv2d(nn.Conv2d):
    """A convolution whose output is multiplied by a fixed ``scale`` (NTK scaling)."""

    def __init__(self, *args, scale: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scale = scale

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        out = super().forward(u)
        return out if self.scale == 1.0 else self.scale * out


# ------------------------------------------------------------- single-hidden-layer CNN
class SingleLayerCNN(_ImageNetwork):
    """``z = scale_readout * readout(relu(scale_hidden * hidden(u)))``; see the factory.

    Built by :func:`build_single_layer_cnn`, which draws the weights and sets the scales.
    :func:`ntkutils.kernels.ntk_empirical` computes the tangent kernel of a model of this
    type from feature products (exact, and much faster than Jacobians).
    """

    def __init__(
        self, in_channels: int, channels: int, patch_size: int, bias: bool,
        parameterization: str,
    ) -> None:
        super().__init__()
        self.in_channels, self.channels, self.patch_size = in_channels, channels, patch_size
        self.parameterization = parameterization
        self.hidden = nn.Conv2d(
            in_channels, channels, patch_size, padding=patch_size // 2, bias=bias
        )
        self.readout = nn.Conv2d(channels, in_channels, 1, bias=bias)
        self.scale_hidden = 1.0
        self.scale_readout = 1.0

    def forward_batch(self, u: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.scale_hidden * self.hidden(u))  # (B, c, H, W)
        return self.scale_readout * self.readout(h)  # (B, C, H, W)


def build_single_layer_cnn(
    in_channels: int = 1,
    channels: int = 256,
    patch_size: int = 3,
    *,
    parameterization: str = "ntk",
    bias: bool = False,
    symmetric: bool = False,
    generator: torch.Generator | None = None,
) -> SingleLayerCNN:
    """The single-hidden-layer CNN of the theory: a k x k convolution, ReLU, a 1 x 1 readout.

    Parameters
    ----------
    in_channels : int
        ``C``, channels of the input image and of the output (1 gray, 3 colour).
    channels : int
        ``c``, the width (number of hidden units per pixel).  The NTK limit is ``c -> inf``.
    patch_size : int
        ``k``, odd side of the convolution's square support (the patch seen by a unit).
    parameterization : {"ntk", "standard"}
        ``"ntk"``: weights ``N(0, 1)`` and explicit scalings ``d ** -0.5`` (``d = C k^2``)
        and ``c ** -0.5`` in ``forward``.  ``"standard"``: PyTorch's default
        ``nn.Conv2d`` initialisation and no scaling.
    bias : bool
        Add a bias to both convolutions.  With ``"ntk"`` it is ``N(0, 1)`` and scaled
        with its layer's weights: ``d ** -0.5 (<w_h, P_i(u)> + b_h)``.  The closed-form
        kernel of :mod:`ntkutils.kernels` assumes ``bias=False``.
    symmetric : bool
        Draw ``c / 2`` hidden units and mirror them: unit ``h + c/2`` gets the same
        input weights as unit ``h`` and the opposite readout weights, so the output at
        initialisation is 0 (up to floating-point rounding) while the NTK keeps its
        expectation (it fluctuates like the kernel of ``c / 2`` independent units, not
        ``c``).  Needs an even ``channels``; the readout bias starts at 0.
    generator : torch.Generator, optional
        Source of the random weights.

    Returns
    -------
    SingleLayerCNN
        A :class:`torch.nn.Module` mapping ``(C, H, W)`` (or ``(B, C, H, W)``) to the same
        shape.  Attributes ``hidden``, ``readout``, ``scale_hidden``, ``scale_readout``,
        ``parameterization``, ``patch_size``, ``in_channels``, ``channels``.

    Notes
    -----
    With ``parameterization="ntk"`` and no bias the network computes, for output channel
    ``o`` and pixel ``i``,

    .. math:: z_{o,i} = c^{-1/2} \\sum_{h=1}^{c} a_{o,h}\\,
              \\mathrm{relu}\\big(d^{-1/2} \\langle w_h, P_i(u) \\rangle\\big),
              \\qquad a, w \\sim \\mathcal N(0, 1),

    where ``P_i(u)`` is the ``C x k x k`` patch of ``u`` centred at pixel ``i`` with zero
    padding.  Its NTK tends to the arc-cosine patch kernel of
    :func:`ntkutils.kernels.ntk_closed_form` as ``c -> inf``.  The network has
    ``c (C k^2 + C)`` weights (plus ``c + C`` biases).

    The NTK prediction ``z^t = (I - (I - eta Theta)^t) y`` assumes ``z^0 = 0``: use
    ``symmetric=True`` to compare a trained network with it.

    References
    ----------
    Jacot, Gabriel & Hongler, "Neural tangent kernel", NeurIPS 2018.
    Tachella, Tang & Davies, "The neural tangent link between CNN denoisers and non-local
    filters", CVPR 2021.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> net = build_single_layer_cnn(channels=8, symmetric=True, generator=g)
    >>> u = torch.rand(1, 5, 5, generator=g)
    >>> net(u).shape, count_parameters(net)
    (torch.Size([1, 5, 5]), 80)
    >>> bool(net(u).abs().max() < 1e-6)
    True
    """
    _check_channels(in_channels, "in_channels")
    _check_channels(channels, "channels")
    check_patch_size(patch_size)
    parameterization = _check_parameterization(parameterization)
    check_generator(generator)
    if symmetric and channels % 2:
        raise ValueError(
            f"channels must be even when symmetric=True (units come in mirrored pairs), "
            f"got {channels}"
        )
    _check_size((in_channels * patch_size**2 + 2) * channels, "the network (channels)")
    net = SingleLayerCNN(in_channels, channels, patch_size, bool(bias), parameterization)
    net.scale_hidden = _init_conv(net.hidden, parameterization, generator)
    net.scale_readout = _init_conv(net.readout, parameterization, generator)
    if parameterization == "ntk":
        net.scale_readout = channels**-0.5  # fan_in of the 1 x 1 readout is c
    if symmetric:
        half = channels // 2
        with torch.no_grad():
            net.hidden.weight[half:] = net.hidden.weight[:half]
            net.readout.weight[:, half:] = -net.readout.weight[:, :half]
            if bias:
                net.hidden.bias[half:] = net.hidden.bias[:half]
                net.readout.bias.zero_()
    return net


# ------------------------------------------------------------------------ vanilla CNN
class VanillaCNN(_ImageNetwork):
    """``depth`` x (k x k conv, ReLU), then a 1 x 1 readout; see the factory."""

    def __init__(self, layers: list[_ScaledConv2d], readout: _ScaledConv2d) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.readout = readout
        self.in_channels = layers[0].in_channels

    def forward_batch(self, u: torch.Tensor) -> torch.Tensor:
        h = u
        for layer in self.layers:
            h = torch.relu(layer(h))  # (B, c, H, W)
        return self.readout(h)  # (B, C, H, W)


def build_vanilla_cnn(
    in_channels: int = 1,
    channels: int = 64,
    depth: int = 5,
    patch_size: int = 3,
    *,
    parameterization: str = "ntk",
    generator: torch.Generator | None = None,
) -> VanillaCNN:
    """A plain deep CNN: ``depth`` layers of (k x k convolution to ``channels``, ReLU), 1 x 1 out.

    Parameters
    ----------
    in_channels : int
        ``C``, channels of the input and of the output.
    channels : int
        ``c``, the width of every hidden layer.
    depth : int
        ``L >= 1``, the number of hidden layers (``depth=1`` is the single-hidden-layer
        CNN of :func:`build_single_layer_cnn`).
    patch_size : int
        ``k``, odd side of each convolution (zero padding ``k // 2``, stride 1).
    parameterization : {"ntk", "standard"}
        ``"ntk"``: weights ``N(0, 1)``, each layer's output scaled by
        ``fan_in ** -0.5 = (c_prev k^2) ** -0.5`` and the readout by ``c ** -0.5``.
        ``"standard"``: PyTorch's default initialisation, no scaling.
    generator : torch.Generator, optional
        Source of the random weights.

    Returns
    -------
    torch.nn.Module
        Maps ``(C, H, W)`` (or ``(B, C, H, W)``) to the same shape.  Attributes
        ``layers`` (a ``ModuleList`` of convolutions, each with a ``scale``) and
        ``readout``.  No biases.

    Notes
    -----
    With ``h^0 = u`` and ``h^l = relu((c_{l-1} k^2)^{-1/2} W^l * h^{l-1})``, the output is
    ``z = c^{-1/2} A h^L``.  In the NTK parameterisation its infinite-width NTK is the
    CNTK recursion of Arora et al. (2019) with zero padding,
    :func:`ntkutils.kernels.ntk_closed_form` with ``depth=L``.  Weights:
    ``c C k^2 + (L - 1) c^2 k^2 + c C``.

    References
    ----------
    Arora et al., "On exact computation with an infinitely wide neural net", NeurIPS 2019.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> net = build_vanilla_cnn(channels=4, depth=2, generator=g)
    >>> net(torch.rand(1, 6, 6, generator=g)).shape, count_parameters(net)
    (torch.Size([1, 6, 6]), 184)
    """
    _check_channels(in_channels, "in_channels")
    _check_channels(channels, "channels")
    _check_channels(depth, "depth")
    check_patch_size(patch_size)
    parameterization = _check_parameterization(parameterization)
    check_generator(generator)
    _check_size((in_channels + (depth - 1) * channels) * channels * patch_size**2
                + channels * in_channels, "the network (channels, depth)")
    layers = []
    for layer in range(depth):
        c_prev = in_channels if layer == 0 else channels
        conv = _ScaledConv2d(c_prev, channels, patch_size, padding=patch_size // 2,
                             bias=False)
        conv.scale = _init_conv(conv, parameterization, generator)
        layers.append(conv)
    readout = _ScaledConv2d(channels, in_channels, 1, bias=False)
    readout.scale = _init_conv(readout, parameterization, generator)
    return VanillaCNN(layers, readout)


# ---------------------------------------------------------------------- encoder-decoder
class _Level(nn.Module):
    """One scale of the encoder-decoder: skip branch, down block, deeper levels, up block."""

    def __init__(self, c_in: int, channels: int, skip: int, deeper: nn.Module | None,
                 conv, act, norm) -> None:
        super().__init__()
        self.skip = nn.Sequential(conv(c_in, skip, 1), norm(skip), act()) if skip else None
        self.down = nn.Sequential(
            conv(c_in, channels, 3, stride=2), norm(channels), act(),
            conv(channels, channels, 3), norm(channels), act(),
        )
        self.deeper = deeper
        self.up = nn.Sequential(
            conv(channels + skip, channels, 3), norm(channels), act(),
            conv(channels, channels, 1), norm(channels), act(),
        )

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        h = self.down(u)  # (B, c, H/2, W/2)
        if self.deeper is not None:
            h = self.deeper(h)
        h = F.interpolate(h, size=u.shape[-2:], mode="bilinear", align_corners=False)
        if self.skip is not None:
            h = torch.cat([self.skip(u), h], dim=1)  # (B, s + c, H, W)
        return self.up(h)  # (B, c, H, W)


class Autoencoder(_ImageNetwork):
    """Encoder-decoder with narrow skips; see :func:`build_autoencoder`."""

    def __init__(self, body: _Level, head: nn.Module, in_channels: int, levels: int,
                 sigmoid: bool) -> None:
        super().__init__()
        self.body, self.head = body, head
        self.in_channels, self.levels, self.sigmoid = in_channels, levels, sigmoid

    def forward_batch(self, u: torch.Tensor) -> torch.Tensor:
        m = 2**self.levels
        if any(s % m or s < 2 * m for s in u.shape[-2:]):
            raise ValueError(
                f"input height and width must be multiples of 2**levels = {m} and at "
                f"least {2 * m} (reflection padding at the coarsest scale), got "
                f"{tuple(u.shape[-2:])}; crop the image or lower levels"
            )
        z = self.head(self.body(u))  # (B, C_out, H, W)
        return torch.sigmoid(z) if self.sigmoid else z


def build_autoencoder(
    in_channels: int = 1,
    out_channels: int = 1,
    channels: int = 32,
    *,
    levels: int = 3,
    skip_channels: int = 4,
    batch_norm: bool = True,
    sigmoid: bool = False,
    parameterization: str = "standard",
    generator: torch.Generator | None = None,
) -> Autoencoder:
    """A small deep-image-prior encoder-decoder with narrow skip connections.

    Parameters
    ----------
    in_channels : int
        Channels of the network input (e.g. 32 for an iid-noise input, 1 for an image).
    out_channels : int
        Channels of the output image (1 gray, 3 colour).
    channels : int
        ``c``, the width of every convolution of the encoder and decoder.
    levels : int
        Number of scales; the input's height and width must be divisible by
        ``2 ** levels``.
    skip_channels : int
        ``s``, width of the 1 x 1 skip branch at each scale (0 removes the skips).
        Keep it narrow: full-width skips let the network copy the noise within a few
        tens of steps.
    batch_norm : bool
        Insert ``BatchNorm2d`` after every convolution, as the deep image prior does
        (with one image it normalises each channel over the pixels).  On by default:
        without it, Adam at the deep image prior's learning rate 1e-2 diverges on this
        network (measured on a 64 x 64 image: the loss jumps by orders of magnitude
        within 10 steps).  With batch norm *and full-width* skips the network fits the
        noise within a few tens of steps; the narrow skips here avoid that.
    sigmoid : bool
        Apply a sigmoid to the output (as the deep image prior does).  Off by default,
        so that the output is not confined to (0, 1) and the loss is a plain least
        squares fit.
    parameterization : {"standard", "ntk"}
        ``"standard"``: PyTorch's default initialisation, with biases.  ``"ntk"``: weights
        and biases ``N(0, 1)``, each convolution's output scaled by ``fan_in ** -0.5``.
    generator : torch.Generator, optional
        Source of the random weights.

    Returns
    -------
    torch.nn.Module
        Maps ``(in_channels, H, W)`` (or a batch) to ``(out_channels, H, W)``.

    Notes
    -----
    One scale, recursively (``u`` its input at resolution ``H x W``; every
    convolution is followed by batch norm when ``batch_norm``)::

        skip = act(conv1x1(u -> s))
        down = act(conv3x3(act(conv3x3_stride2(u -> c)) -> c))       # H/2 x W/2
        up   = bilinear_x2(deeper_scales(down))                      # H x W, c channels
        out  = act(conv1x1(act(conv3x3(cat(skip, up) -> c)) -> c))

    followed by a final 1 x 1 convolution to ``out_channels``.  Activation: LeakyReLU
    with slope 0.2; 3 x 3 convolutions with reflection padding.  This follows the
    recipe of the deep image prior's ``skip`` network (stride-2 downsampling, bilinear
    upsampling, 4 skip channels, batch norm, one width at every scale) at a smaller
    size; the sizes and the missing sigmoid are the course's own choices.

    Measured (the course's setting, not the paper's): ``channels=32`` (91k weights),
    iid-noise input ``(32, 64, 64)``, Adam lr 1e-2, ``input_noise_std=1/30``, a
    64 x 64 camera crop at sigma = 25/255 (20.2 dB): best 25.5 dB near step 400
    (an oracle), 21.3 dB at step 2000.  Parameters: about
    ``levels * (3 * 9 + 1) * c^2``; :func:`count_parameters` gives the exact number.

    References
    ----------
    Ulyanov, Vedaldi & Lempitsky, "Deep image prior", CVPR 2018.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> net = build_autoencoder(in_channels=2, channels=8, levels=2, generator=g)
    >>> net(torch.rand(2, 8, 8, generator=g)).shape
    torch.Size([1, 8, 8])
    """
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("channels", channels), ("levels", levels)):
        _check_channels(value, name)
    if isinstance(skip_channels, bool) or not isinstance(skip_channels, int) \
            or skip_channels < 0:
        raise ValueError(f"skip_channels must be an int >= 0, got {skip_channels!r}")
    parameterization = _check_parameterization(parameterization)
    check_generator(generator)

    _check_size(levels * (channels + skip_channels + 9 * channels) * (channels + skip_channels)
                * 2, "the network (channels, levels)")

    def conv(c_in: int, c_out: int, k: int, stride: int = 1) -> _ScaledConv2d:
        layer = _ScaledConv2d(c_in, c_out, k, stride=stride, padding=k // 2,
                              padding_mode="reflect" if k > 1 else "zeros")
        layer.scale = _init_conv(layer, parameterization, generator)
        return layer

    def norm(c: int) -> nn.Module:
        return nn.BatchNorm2d(c) if batch_norm else nn.Identity()

    def act() -> nn.Module:
        return nn.LeakyReLU(0.2)

    body = None
    for level in reversed(range(levels)):  # build from the coarsest scale up
        c_in = in_channels if level == 0 else channels
        body = _Level(c_in, channels, skip_channels, body, conv, act, norm)
    head = conv(channels, out_channels, 1)
    return Autoencoder(body, head, in_channels, levels, bool(sigmoid))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars (weights and biases) of ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        Any module.

    Returns
    -------
    int
        ``sum(p.numel() for p in model.parameters() if p.requires_grad)``.

    Examples
    --------
    >>> count_parameters(build_single_layer_cnn(channels=10, patch_size=3))
    100
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
