"""Tests of ntkutils.kernels against independent computations.

The centre of the suite: the closed-form kernels against the empirical NTK of wide finite
networks (a Monte-Carlo check whose error must fall like ``c^{-1/2}``).  The finite network of
the shared contract is written from its definition in ``oracles.ContractCNN``, independently
of ``ntkutils.networks``.  The empirical NTK alone is tested in ``test_empirical.py``.
"""
import math
import os

os.environ.setdefault("TQDM_DISABLE", "1")

import mpmath  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ntkutils.kernels import (  # noqa: E402
    arccos_kernel,
    extract_patches,
    ntk_closed_form,
    ntk_empirical,
)
from ntkutils.networks import build_single_layer_cnn, build_vanilla_cnn  # noqa: E402
from oracles import ContractCNN, astronaut, camera  # noqa: E402


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# Tolerances per dtype, relative to the largest entry: a few hundred ulps, room for the
# summation order of SIMD reductions (which differs between CPUs), never tighter.
RTOL = {torch.float64: 1e-11, torch.float32: 1e-5}


def close(A, B, dtype=None):
    """``A`` equals ``B`` to the tolerance of ``dtype`` (default ``A``'s), relative to max|B|."""
    scale = float(B.abs().max())
    return float((A - B).abs().max()) <= RTOL[dtype or A.dtype] * scale


def ntk_mpmath(u, k, depth, dps=40):
    """Theta of the depth-``L`` CNN kernel, pair by pair in ``dps``-digit arithmetic.

    Written from the recursion of ``ntk_closed_form``'s docstring, independently of its
    vectorised code: ``Sigma`` from the zero-padded patches, the ReLU duals from
    ``mpmath.acos`` (exact enough at 40 digits), averages over the ``k x k`` shifts of both
    points that stay inside the image.  Returns an (n, n) float64 tensor.
    """
    with mpmath.workdps(dps):
        C, H, W = u.shape
        a, d = k // 2, C * k * k
        pixels = [(r, c) for r in range(H) for c in range(W)]
        offsets = [(dr, dc) for dr in range(-a, a + 1) for dc in range(-a, a + 1)]

        def inside(r, c):
            return 0 <= r < H and 0 <= c < W

        patch = {(r, c): [mpmath.mpf(float(u[ch, r + dr, c + dc])) if inside(r + dr, c + dc)
                          else mpmath.mpf(0) for ch in range(C) for dr, dc in offsets]
                 for r, c in pixels}
        sigma = {(p, q): mpmath.fsum(x * y for x, y in zip(patch[p], patch[q])) / d
                 for p in pixels for q in pixels}
        theta = dict(sigma)
        for layer in range(depth):
            K, K_dot = {}, {}
            for (p, q), s in sigma.items():
                sd = mpmath.sqrt(sigma[p, p] * sigma[q, q])
                phi = mpmath.acos(max(-1, min(1, s / sd))) if sd > 0 else mpmath.pi
                K[p, q] = sd * (mpmath.sin(phi) + (mpmath.pi - phi) * mpmath.cos(phi)) / (2 * mpmath.pi)
                K_dot[p, q] = (mpmath.pi - phi) / (2 * mpmath.pi) if sd > 0 else mpmath.mpf(0)
            if layer == depth - 1:
                out = [[K[p, q] + K_dot[p, q] * theta[p, q] for q in pixels] for p in pixels]
                return torch.tensor([[float(x) for x in row] for row in out], dtype=torch.float64)
            new_sigma, new_theta = {}, {}
            for p in pixels:
                for q in pixels:
                    s = t = mpmath.mpf(0)
                    for dr, dc in offsets:
                        pp, qq = (p[0] + dr, p[1] + dc), (q[0] + dr, q[1] + dc)
                        if inside(*pp) and inside(*qq):
                            s += K[pp, qq]
                            t += K[pp, qq] + K_dot[pp, qq] * theta[pp, qq]
                    new_sigma[p, q], new_theta[p, q] = s / k**2, t / k**2
            sigma, theta = new_sigma, new_theta
    raise AssertionError("unreachable")


def rel_err(A, B):
    return float((A - B).norm() / B.norm())


def loglog_slope(widths, errors):
    return float(np.polyfit(np.log(widths), np.log(errors), 1)[0])


# ------------------------------------------------------------------- patches, arc-cosine
def test_extract_patches_match_explicit_loops():
    u = torch.rand(3, 5, 4, generator=gen(0), dtype=torch.float64)
    k, (C, H, W) = 3, u.shape
    P = extract_patches(u, k)
    assert P.shape == (H * W, C * k * k)
    for r in range(H):
        for c in range(W):
            expect = torch.zeros(C, k, k, dtype=u.dtype)
            for a in range(k):
                for b in range(k):
                    rr, cc = r + a - 1, c + b - 1
                    if 0 <= rr < H and 0 <= cc < W:
                        expect[:, a, b] = u[:, rr, cc]
            assert torch.equal(P[r * W + c], expect.flatten())


def test_arccos_kernels_match_monte_carlo():
    g = gen(1)
    X = torch.randn(4, 5, generator=g, dtype=torch.float64)
    X[3] = 0.0  # a zero row
    Y = torch.randn(3, 5, generator=g, dtype=torch.float64)
    w = torch.randn(200_000, 5, generator=g, dtype=torch.float64)
    px, py = w @ X.T, w @ Y.T  # (N, 4), (N, 3)
    mc1 = 2 * (torch.relu(px).T @ torch.relu(py)) / w.shape[0]  # 2 E[relu relu]
    mc0 = 2 * ((px > 0).double().T @ (py > 0).double()) / w.shape[0]  # 2 E[step step]
    k1, k0 = arccos_kernel(X, Y, 1), arccos_kernel(X, Y, 0)
    scale = X.norm(dim=1)[:, None] * Y.norm(dim=1)[None, :]
    assert torch.allclose(k1, mc1, atol=0.02 * float(scale.max()))
    assert torch.allclose(k0, mc0, atol=0.01)
    assert torch.equal(k0[3], torch.zeros(3, dtype=k0.dtype))
    assert torch.equal(k1[3], torch.zeros(3, dtype=k1.dtype))
    assert torch.allclose(torch.diag(arccos_kernel(Y, Y, 1)), (Y**2).sum(1))  # k1(x, x) = |x|^2


# ---------------------------------------------------------------- closed form, exactness
def test_closed_form_depth1_matches_contract_formula():
    u = camera(5)
    u[:, :2, :2] = 0.0  # pixel 0 then has a zero patch
    k, d = 3, 9
    P = [[u[0, r + a - 1, c + b - 1].item() if 0 <= r + a - 1 < 5 and 0 <= c + b - 1 < 5
          else 0.0 for a in range(k) for b in range(k)] for r in range(5) for c in range(5)]
    P = np.array(P)  # (25, 9)
    expect = np.zeros((25, 25))
    for i in range(25):
        for j in range(25):
            ni, nj = np.linalg.norm(P[i]), np.linalg.norm(P[j])
            if ni > 0 and nj > 0:  # Kahan's angle of the unit vectors: exact at phi = 0 too
                a, b = P[i] / ni, P[j] / nj
                phi = 2 * math.atan2(np.linalg.norm(a - b), np.linalg.norm(a + b))
                expect[i, j] = ni * nj / (2 * math.pi * d) * (
                    math.sin(phi) + 2 * (math.pi - phi) * math.cos(phi))
    ntk = ntk_closed_form(u, k)
    assert ntk.dtype == torch.float64
    assert close(ntk, torch.from_numpy(expect))
    assert torch.equal(ntk[0], torch.zeros(25, dtype=ntk.dtype))


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("colour", [False, True])
def test_closed_form_symmetric_psd_zero_patch(depth, colour):
    u = astronaut(7) if colour else camera(7)
    u[:, :3, :3] = 0.0  # pixel 0's receptive field (depth 1) is zero
    ntk = ntk_closed_form(u, 3, depth=depth)
    assert not ntk.isnan().any()
    assert torch.allclose(ntk, ntk.T, rtol=0, atol=1e-12 * float(ntk.abs().max()))
    assert float(torch.linalg.eigvalsh(ntk).min()) > -1e-10 * float(ntk.abs().max())
    if depth == 1:
        assert torch.equal(ntk[0], torch.zeros_like(ntk[0]))
    u_zero = torch.zeros_like(u)
    assert torch.equal(ntk_closed_form(u_zero, 3, depth=depth), torch.zeros_like(ntk))


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("colour", [False, True])
def test_columns_equal_slices_of_full(depth, colour):
    u = (astronaut(9) if colour else camera(9))[:, :7, :]  # 7 x 9, not square
    n = 7 * 9
    columns = torch.tensor([0, 8, 31, 54, n - 1, 31])  # corners, edges, centre, repeat
    full = ntk_closed_form(u, 3, depth=depth)
    cols = ntk_closed_form(u, 3, depth=depth, columns=columns)
    assert cols.shape == (n, columns.numel())
    assert close(cols, full[:, columns])  # different summation orders: the dtype's tolerance


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_closed_form_matches_high_precision_reference(depth, colour, dtype):
    u = astronaut(4) if colour else camera(5)
    u[:, :2, :2] = 0.0  # a zero patch (depth 1) ...
    u[:, -1, :] = u[:, -2, :] = 0.5  # ... and equal, flat patches: parallel pairs
    ref = ntk_mpmath(u, 3, depth)
    got = ntk_closed_form(u.to(dtype), 3, depth=depth, dtype=dtype)
    assert close(got.double(), ref, dtype), float((got.double() - ref).abs().max() / ref.max())
    if dtype == torch.float64:  # the diagonal too: no spurious sqrt(eps) angle at p = q
        assert float((got - ref).abs().max() / ref.abs().max()) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_arccos_kernels_near_parallel_and_antiparallel(dtype):
    x = torch.tensor([1.0, 2.0, -0.5], dtype=torch.float64)
    e = torch.tensor([0.3, -0.1, 0.2], dtype=torch.float64)
    # exactly parallel and antiparallel, angles of about 2e-3, 2e-4 and 2e-10, orthogonal-ish;
    # from dot products an angle phi is known to eps / phi: sqrt(eps) at the tiny one
    Y = torch.stack([x, 3 * x, x + 1e-2 * e, x + 1e-3 * e, -2 * x, -x + 1e-2 * e, e,
                     x + 1e-9 * e])
    X = x[None].to(dtype)
    with mpmath.workdps(40):
        xs = [mpmath.mpf(float(v)) for v in x]
        for degree in (0, 1):
            expect = []
            for y in Y:
                ys = [mpmath.mpf(float(v)) for v in y]
                nx, ny = mpmath.norm(xs), mpmath.norm(ys)
                phi = mpmath.acos(max(-1, min(1, mpmath.fdot(xs, ys) / (nx * ny))))
                expect.append(1 - phi / mpmath.pi if degree == 0 else
                              nx * ny * (mpmath.sin(phi) + (mpmath.pi - phi) * mpmath.cos(phi))
                              / mpmath.pi)
            expect = torch.tensor([float(v) for v in expect], dtype=torch.float64)
            got = arccos_kernel(X, Y.to(dtype), degree)[0]
            assert got.dtype == dtype
            phi = torch.tensor([float(mpmath.acos(max(-1, min(1, mpmath.fdot(xs, [mpmath.mpf(
                float(v)) for v in y]) / (mpmath.norm(xs) * mpmath.norm(y.tolist())))))) for y in Y])
            gap = torch.minimum(phi, math.pi - phi)  # distance to (anti)parallel
            bound = torch.where(gap < 1e-15, RTOL[dtype],  # exactly (anti)parallel: exact
                                (8 * torch.finfo(dtype).eps / gap).clamp(min=RTOL[dtype]))
            err = (got.double() - expect).abs() / expect.abs().max()
            assert (err[:-1] <= bound[:-1]).all(), (degree, err, bound)
            tiny_angle_error = float((got.double()[-1] - expect[-1]).abs() / expect.abs().max())
            assert tiny_angle_error <= 4 * math.sqrt(torch.finfo(dtype).eps), tiny_angle_error
            assert not got.isnan().any()


def test_closed_form_dtype_and_patch_size_5():
    u = camera(8).float()
    ntk = ntk_closed_form(u, 5, dtype=torch.float32)
    assert ntk.dtype == torch.float32
    assert torch.allclose(ntk.double(), ntk_closed_form(u.double(), 5), rtol=1e-4, atol=1e-6)


def test_networks_module_follows_the_contract():
    u = astronaut(6)
    for depth in (1, 2):
        ours = ContractCNN(3, 5, depth, 3, generator=gen(3)).double()
        if depth == 1:
            theirs = build_single_layer_cnn(3, 5, generator=gen(4)).double()
            convs = [theirs.hidden]
        else:
            theirs = build_vanilla_cnn(3, 5, depth, generator=gen(4)).double()
            convs = list(theirs.layers)
        with torch.no_grad():
            for conv, w in zip(convs, ours.ws):
                conv.weight.copy_(w)
            theirs.readout.weight.copy_(ours.a)
        assert torch.allclose(theirs(u), ours(u[None])[0], rtol=1e-12, atol=1e-14)


# ------------------------------------------------- closed form against finite networks
def test_depth1_gray_converges_like_inverse_sqrt_width():
    u = camera(10)
    ntk = ntk_closed_form(u, 3)
    widths, errors = [64, 256, 1024, 4096], []
    for c in widths:
        errs = [rel_err(ntk_empirical(build_single_layer_cnn(1, c, generator=gen(10 * c + s)),
                                      u), ntk) for s in range(4)]
        errors.append(np.mean(errs))
    assert -0.75 <= loglog_slope(widths, errors) <= -0.3, errors
    assert errors[-1] < 0.06, errors


def test_depth1_colour_each_channel_converges_cross_channel_vanishes():
    u = astronaut(6)
    ntk = ntk_closed_form(u, 3)
    widths, errors, cross = [64, 256, 1024, 4096], [], []
    for c in widths:
        nets = [build_single_layer_cnn(3, c, generator=gen(10 * c + s)) for s in range(3)]
        errors.append(np.mean([rel_err(ntk_empirical(net, u, output_channel=o), ntk)
                               for net in nets for o in range(3)]))
        if c > 1024:
            continue
        crs = []
        for net in nets:  # every block at once, from the full Jacobian (torch.func)
            params = {k: v.detach().double() for k, v in net.named_parameters()}
            J = torch.func.jacrev(
                lambda p: torch.func.functional_call(net, p, (u,)).reshape(-1))(params)
            J = torch.cat([j.reshape(3 * 36, -1) for j in J.values()], 1)  # (3n, parameters)
            blocks = (J @ J.T).reshape(3, 36, 3, 36)
            assert torch.allclose(blocks[1, :, 1], ntk_empirical(net, u, output_channel=1))
            crs.append(float(blocks[0, :, 2].norm() / ntk.norm()))
        cross.append(np.mean(crs))
    assert -0.75 <= loglog_slope(widths, errors) <= -0.3, errors
    assert errors[-1] < 0.06, errors
    # the cross-channel block is pure fluctuation (mean 0): expected ratio 4 from 64 to 1024
    assert cross[-1] < min(0.05, cross[0] / 2), cross


def test_depth2_cntk_converges_like_inverse_sqrt_width():
    u = camera(6).float()  # float32: a Monte-Carlo error of a few percent needs no more
    ntk = ntk_closed_form(u, 3, depth=2)
    widths, seeds, errors = [16, 64, 256], [8, 6, 4], []
    for c, n_seeds in zip(widths, seeds):
        errs = [rel_err(ntk_empirical(ContractCNN(1, c, 2, 3, generator=gen(100 * c + s)), u,
                                      chunk_size=36), ntk.float()) for s in range(n_seeds)]
        errors.append(float(np.exp(np.mean(np.log(errs)))))  # geometric mean: heavy tails
    assert -0.75 <= loglog_slope(widths, errors) <= -0.3, errors
    assert errors[-1] < 0.2, errors


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad, error, match", [
    (torch.rand(8, 8), ValueError, "u must have 3 dimensions"),
    (torch.ones(1, 8, 8, dtype=torch.int64), TypeError, "u must be a real floating"),
    (torch.ones(1, 8, 8, dtype=torch.complex64), TypeError, "u must be a real floating"),
    (torch.full((1, 8, 8), float("nan")), ValueError, "u contains NaN"),
    (torch.full((1, 8, 8), float("inf")), ValueError, "u contains NaN or inf"),
    ([[0.0]], TypeError, "u must be a torch.Tensor"),
])
def test_bad_image_is_refused(bad, error, match):
    with pytest.raises(error, match=match):
        ntk_closed_form(bad)
    with pytest.raises(error, match=match):
        extract_patches(bad, 3)


def test_bad_arguments_are_refused():
    u = torch.rand(1, 8, 8)
    with pytest.raises(ValueError, match="patch_size must be an odd"):
        ntk_closed_form(u, 4)
    with pytest.raises(ValueError, match="patch_size = 9 is larger"):
        ntk_closed_form(u, 9)
    with pytest.raises(TypeError, match="patch_size"):
        extract_patches(u, 3.0)
    with pytest.raises(ValueError, match="depth must be > 0"):
        ntk_closed_form(u, 3, depth=0)
    with pytest.raises(TypeError, match="dtype"):
        ntk_closed_form(u, dtype=torch.int32)
    with pytest.raises(TypeError, match="columns must be an integer"):
        ntk_closed_form(u, columns=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"columns must hold indices in \[0, 64\)"):
        ntk_closed_form(u, columns=torch.tensor([3, 64]))
    with pytest.raises(ValueError, match="max_bytes"):  # refused before allocating 32 GiB
        ntk_closed_form(torch.rand(1, 256, 256), max_bytes=2**31)
    with pytest.raises(ValueError, match="columns="):
        ntk_closed_form(u, max_bytes=1000)
    with pytest.raises(ValueError, match="degree must be 0 or 1"):
        arccos_kernel(torch.rand(2, 3), torch.rand(2, 3), 2)
    with pytest.raises(ValueError, match="same number of columns"):
        arccos_kernel(torch.rand(2, 3), torch.rand(2, 4), 1)
    with pytest.raises(TypeError, match="Y must be a real floating"):
        arccos_kernel(torch.rand(2, 3), torch.ones(2, 3, dtype=torch.int64), 1)


def test_many_channel_input_like_the_deep_image_prior():
    # The deep image prior feeds 32 channels of iid noise: the closed form takes any C,
    # and a wide network with 32 input channels converges to it (Monte Carlo, 2 seeds).
    from ntkutils.networks import build_single_layer_cnn

    u = torch.randn(32, 6, 6, generator=torch.Generator().manual_seed(0)).double()
    K = ntk_closed_form(u, 3)
    errors = {}
    for width in (256, 4096):
        errors[width] = max(float((ntk_empirical(build_single_layer_cnn(
            32, width, generator=torch.Generator().manual_seed(s)).double(), u) - K).norm()
            / K.norm()) for s in range(2))
    assert errors[4096] < 0.06 and errors[4096] < 0.5 * errors[256], errors
