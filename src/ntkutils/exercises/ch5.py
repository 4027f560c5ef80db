"""Checkers of chapter 5, Nyström: the memory of the exact kernel, the Nyström kernel,
orthonormal eigenpairs from a thin factor, the landmarks a 1 % error needs, a prediction
of how the noise level changes the Nyström error, and the spread of Monte-Carlo
degrees of freedom as the number of probes grows."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..nystrom import landmark_pixels, nystrom_eigenpairs
from ..spectral import degrees_of_freedom, eigh_psd, gd_filter
from ..stopping import degrees_of_freedom_mc
from ..images import add_noise, load_image
from ..kernels import ntk_closed_form
from ._feedback import _call, _compare, _fail, _miss, _number, _pair, _passed

__all__ = ["check_ch5_kernel_memory", "check_ch5_nystrom_kernel",
           "check_ch5_orthonormalise", "check_ch5_landmarks_for_error",
           "check_ch5_noise_prediction", "check_ch5_probe_spread",
           "CH5_LANDMARK_COUNTS"]

CH5_LANDMARK_COUNTS = (8, 16, 32, 64, 128, 256)


def check_ch5_kernel_memory(fn: Callable[[int, torch.dtype], Any]) -> None:
    """Checker of Exercise 5.1: the memory of an exact ``n x n`` kernel.

    Parameters
    ----------
    fn : callable
        ``fn(side, dtype)`` for the side in pixels of a square image and a floating
        ``torch.dtype``, returning the memory of its ``n x n`` kernel (``n = side**2``)
        in GiB (``2**30`` bytes) as a float.

    Raises
    ------
    ExerciseFailed
        When an answer differs by more than 0.1 % from the size of an actual tensor's
        storage: ``n`` rows of a one-row tensor of that dtype.

    Notes
    -----
    ``n^2`` entries of ``b`` bytes each: ``n^2 b / 2^30`` GiB, ``b = 8`` for float64 and 4
    for float32.  A 256 x 256 image gives ``n = 65536`` and 32 GiB in float64.

    Examples
    --------
    >>> check_ch5_kernel_memory(lambda side, dtype: side**4
    ...                         * torch.empty((), dtype=dtype).element_size() / 2**30)
    Exercise 5.1: correct (5 image sizes in float16, float32 and float64).
    """
    ex = "Exercise 5.1"
    cases = [(64, torch.float64), (256, torch.float64), (512, torch.float32),
             (100, torch.float64), (128, torch.float16)]
    for side, dtype in cases:
        n = side * side
        row = torch.empty(1, n, dtype=dtype)  # (1, n): one row of the kernel
        expected = n * row.untyped_storage().nbytes() / 2**30
        got = _number(ex, _call(ex, fn, side, dtype), "a number of GiB (a Python float)",
                      "return n * n * bytes_per_entry / 2**30 as a float", show="{type}")
        if not abs(got - expected) <= 1e-3 * expected:
            _fail(ex, f"the GiB of the kernel of a {side} x {side} image in {dtype}",
                  f"{got:.6g}: {_miss(got, expected)}",
                  "n = side**2 pixels, n**2 entries, element_size() bytes each; "
                  "1 GiB = 2**30 bytes (not 1e9)")
    _passed(ex, "5 image sizes in float16, float32 and float64")


def check_ch5_nystrom_kernel(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> None:
    """Checker of Exercise 5.2: the Nyström reconstruction ``C A^+ C^T``.

    Parameters
    ----------
    fn : callable
        ``fn(columns, landmarks)`` for the kernel's columns ``C = Theta[:, S]`` ``(n, m)``
        and the landmark indices ``S`` ``(m,)``, returning ``C A^+ C^T`` ``(n, n)`` with
        ``A = C[S]``.

    Raises
    ------
    ExerciseFailed
        When the answer differs from ``C pinv(A) C^T`` (``torch.linalg.pinv``) for the NTK
        of an 8 x 8 image with 8, 16 and all 64 landmarks (all landmarks must give back
        the exact kernel).

    Notes
    -----
    :math:`\\tilde\\Theta = C A^+ C^\\top`, :math:`C = \\Theta_{:, S}`,
    :math:`A = \\Theta_{S, S}`; it equals ``Theta`` on the landmark columns and rows, and
    everywhere when ``S`` is every pixel.

    Examples
    --------
    >>> check_ch5_nystrom_kernel(lambda C, S: C @ torch.linalg.pinv(C[S]) @ C.T)
    Exercise 5.2: correct (8, 16 and 64 landmarks of an 8 x 8 image (64: the exact kernel)).
    """
    ex = "Exercise 5.2"
    u = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(52),
                   dtype=torch.float64)
    K = ntk_closed_form(u, 3)  # (n, n)
    for m in (8, 16, 64):
        S = landmark_pixels((8, 8), m, generator=torch.Generator().manual_seed(m))
        C = K[:, S]  # (n, m)
        ref = K.clone() if m == 64 else C @ torch.linalg.pinv(C[S], hermitian=True) @ C.T
        got = _call(ex, fn, C.clone(), S.clone())
        _compare(ex, got, ref, 1e-6, 1e-12,
                 f"with m = {m} landmarks: A = C[S] is the (m, m) block of the landmark "
                 "rows; use its pseudo-inverse (torch.linalg.pinv) and return "
                 "C @ A^+ @ C.T, shape (n, n)")
    _passed(ex, "8, 16 and 64 landmarks of an 8 x 8 image (64: the exact kernel)")


def check_ch5_orthonormalise(fn: Callable[[torch.Tensor], Any]) -> None:
    """Checker of Exercise 5.3: orthonormal eigenpairs of ``R R^T`` from a thin ``R``.

    Parameters
    ----------
    fn : callable
        ``fn(R)`` for ``R`` ``(n, k)`` of rank ``k``, returning ``(eigvals, eigvecs)``:
        ``eigvals`` ``(k,)`` in descending order and ``eigvecs`` ``(n, k)`` with
        orthonormal columns such that ``eigvecs diag(eigvals) eigvecs^T = R R^T``.

    Raises
    ------
    ExerciseFailed
        When the columns are not orthonormal, the eigenvalues are not the ``k`` largest of
        ``R R^T`` (``torch.linalg.eigvalsh`` of the ``n x n`` matrix) in descending order,
        or the product does not give back ``R R^T``.

    Notes
    -----
    With ``R^T R = U diag(s) U^T`` (a ``k x k`` problem), ``V = R U diag(s^{-1/2})`` has
    ``V^T V = I`` and ``V diag(s) V^T = R R^T`` (Fowlkes et al.'s one-shot
    orthogonalisation); equivalently the thin SVD ``R = V diag(s^{1/2}) U^T``.

    Examples
    --------
    >>> def ortho(R):
    ...     V, s, _ = torch.linalg.svd(R, full_matrices=False)
    ...     return s**2, V
    >>> check_ch5_orthonormalise(ortho)
    Exercise 5.3: correct (2 cases: V^T V = I, V diag(lam) V^T = R R^T, lam descending).
    """
    ex = "Exercise 5.3"
    g = torch.Generator().manual_seed(53)
    R1 = torch.randn(40, 6, generator=g, dtype=torch.float64)
    R2 = torch.randn(30, 4, generator=g, dtype=torch.float64) * torch.tensor(
        [5.0, 1.0, 0.5, 0.1], dtype=torch.float64)  # (n, k) with spread singular values
    for R in (R1, R2):
        n, k = R.shape
        lam, V = _pair(ex, _call(ex, fn, R.clone()), "a pair (eigvals, eigvecs)",
                       "return two tensors: eigvals of shape (k,) and eigvecs of shape (n, k)")
        RRt = R @ R.T  # (n, n)
        top = torch.linalg.eigvalsh(RRt).flip(0)[:k]  # (k,), independent, descending
        _compare(ex, lam, top, 1e-8, 1e-10,
                 "the eigenvalues of R R^T are those of the small k x k matrix R^T R; "
                 "sort them in descending order")
        _compare(ex, V.T @ V if isinstance(V, torch.Tensor) else V,
                 torch.eye(k, dtype=torch.float64), 1e-8, 1e-8,
                 "eigvecs must be (n, k) with orthonormal columns: divide R U by the "
                 "square roots of the eigenvalues")
        _compare(ex, V @ torch.diag(lam.to(V.dtype)) @ V.T, RRt, 1e-8, 1e-10,
                 "V diag(lam) V^T must give back R R^T: pair each column with its "
                 "eigenvalue (same order)")
    _passed(ex, "2 cases: V^T V = I, V diag(lam) V^T = R R^T, lam descending")


def check_ch5_landmarks_for_error(answer: Any) -> None:
    """Checker of Exercise 5.4: the fewest landmarks for a 1 % filter error.

    Parameters
    ----------
    answer : int
        The smallest ``m`` in ``CH5_LANDMARK_COUNTS = (8, 16, 32, 64, 128, 256)`` whose
        Nyström filter output is within 1 % (relative 2-norm) of the exact one, for the
        set-up of the exercise: ``x = load_image("camera", size=32)``, ``y = add_noise(x,
        25/255)`` with a generator seeded 0, the single-hidden-layer NTK with 3 x 3
        patches in float64, ``lr = 1/lambda_max`` of the exact kernel, ``t = 50`` steps,
        landmarks ``landmark_pixels((32, 32), m)`` with a generator seeded 0.

    Raises
    ------
    ExerciseFailed
        Unless ``answer`` equals the ``m`` found by recomputing every error here.

    Notes
    -----
    The exact output is ``z^t = V diag(1 - (1 - lr lam)^t) V^T y`` from the eigenpairs
    of the exact kernel, the Nyström output the same with the Nyström eigenpairs and the
    same ``lr`` and ``t``; the error is ``||z_m - z|| / ||z||``.

    Examples
    --------
    >>> check_ch5_landmarks_for_error(64)
    Exercise 5.4: correct (the smallest m within 1 % of 6 counts).
    """
    ex = "Exercise 5.4"
    answer = _number(ex, answer, f"an int, one of {CH5_LANDMARK_COUNTS}",
                     "set m_needed to the number of landmarks, an int", kinds=int,
                     show="{value!r}")
    x = load_image("camera", size=32)
    y = add_noise(x, 25 / 255, generator=torch.Generator().manual_seed(0)).double()
    K = ntk_closed_form(y, 3)  # (n, n)
    lam, V = eigh_psd(K)
    lr, t = 1.0 / float(lam[0]), 50
    z = gd_filter(y, lam, V, [t], lr=lr)[0]  # (1, 32, 32)
    errors = []
    for m in CH5_LANDMARK_COUNTS:
        S = landmark_pixels((32, 32), m, generator=torch.Generator().manual_seed(0))
        lam_m, V_m = nystrom_eigenpairs(K[:, S], S)
        z_m = gd_filter(y, lam_m, V_m, [t], lr=lr)[0]
        errors.append(float((z_m - z).norm() / z.norm()))
    expected = next(m for m, e in zip(CH5_LANDMARK_COUNTS, errors) if e < 0.01)
    if answer != expected:
        _fail(ex, "the smallest m of CH5_LANDMARK_COUNTS within 1 %",
              f"m = {answer}: " + ("more than needed" if answer > expected else
                                   "too few (its error is above 1 %)"),
              f"the relative errors for m = {CH5_LANDMARK_COUNTS} are not what your m "
              "suggests: use the same lr = 1/lambda_max of the EXACT kernel and t = 50 "
              "for both outputs, and ||z_m - z|| / ||z|| (not squared)"
              + ("" if answer in CH5_LANDMARK_COUNTS else
                 f"; m must be one of {CH5_LANDMARK_COUNTS}"))
    _passed(ex, f"the smallest m within 1 % of {len(CH5_LANDMARK_COUNTS)} counts")


_CH5_PREDICTIONS = ("smaller", "about the same", "larger")


def _ch5_kernel_errors(sigma: float, m: int = 64, side: int = 32) -> list[float]:
    """Relative Frobenius errors of the Nyström kernel of the noisy camera image, for the
    landmark seeds 0, 1, 2 (noise seed 0, 3 x 3 patches, float64)."""
    x = load_image("camera", size=side)
    y = add_noise(x, sigma, generator=torch.Generator().manual_seed(0)).double()
    K = ntk_closed_form(y, 3)  # (n, n)
    errors = []
    for seed in range(3):
        S = landmark_pixels((side, side), m, generator=torch.Generator().manual_seed(seed))
        C = K[:, S]  # (n, m)
        K_m = C @ torch.linalg.pinv(C[S], hermitian=True) @ C.T  # (n, n)
        errors.append(float((K_m - K).norm() / K.norm()))
    return errors


def check_ch5_noise_prediction(prediction: Any) -> None:
    """Checker of Exercise 5.5: how twice the noise changes the Nyström kernel error.

    Parameters
    ----------
    prediction : str
        One of ``"smaller"``, ``"about the same"`` or ``"larger"``: the relative Frobenius
        error ``||C A^+ C^T - Theta||_F / ||Theta||_F`` of the NTK of the noisy 32 x 32
        camera image (noise seed 0, 3 x 3 patches, ``m = 64`` grid landmarks, mean over
        the landmark seeds 0, 1, 2) at ``sigma = 50/255``, compared with ``25/255``.

    Raises
    ------
    ExerciseFailed
        When ``prediction`` is not one of the three words, or is not what the errors
        recomputed here show ("about the same": the two means within 20 %).

    Notes
    -----
    Noisier patches are less alike, so the kernel's eigenvalues fall more slowly and
    ``m`` landmark columns capture less of it.

    Examples
    --------
    >>> check_ch5_noise_prediction("larger")
    Exercise 5.5: correct (your prediction matches the run, 3 landmark seeds).
    """
    ex = "Exercise 5.5"
    word = prediction.strip().lower() if isinstance(prediction, str) else None
    if word not in _CH5_PREDICTIONS:
        _fail(ex, f"one of the words {_CH5_PREDICTIONS}", _shown_answer(prediction),
              "set prediction to one of the three strings, before running the cell")
    low = sum(_ch5_kernel_errors(25 / 255)) / 3
    high = sum(_ch5_kernel_errors(50 / 255)) / 3
    ratio = high / low
    truth = ("larger" if ratio > 1.2 else "smaller" if ratio < 1 / 1.2
             else "about the same")
    if word != truth:
        _fail(ex, "your prediction against the run below it (mean of 3 landmark "
              "seeds, sigma = 50/255 against 25/255)",
              f"{prediction!r} is not what the run shows",
              "read the two printed errors again; then think about what noise does to "
              "the patches: are noisy patches more or less alike, and how does that change "
              "how fast the kernel's eigenvalues fall, which is what m columns can capture?")
    _passed(ex, "your prediction matches the run, 3 landmark seeds")


def _shown_answer(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _ch5_frozen_filter():
    """The frozen filter of Exercise 5.6: ``u -> z^50(u)`` with the exact NTK of the noisy
    32 x 32 camera image (noise seed 0) built once, and its noisy image and eigenvalues."""
    x = load_image("camera", size=32)
    y = add_noise(x, 25 / 255, generator=torch.Generator().manual_seed(0)).double()
    lam, V = eigh_psd(ntk_closed_form(y, 3))
    lr = 1.0 / float(lam[0])
    return (lambda u: gd_filter(u, lam, V, [50], lr=lr)[0]), y, lam, lr


def check_ch5_probe_spread(df_runs: Callable[[int], Any], df_exact: Any, shrink: Any
                           ) -> None:
    """Checker of Exercise 5.6: Monte-Carlo degrees of freedom with 1 and 16 probes.

    Parameters
    ----------
    df_runs : callable
        ``df_runs(n_probes)`` returns the ten estimates ``degrees_of_freedom_mc(frozen,
        y32, n_probes=n_probes, generator=generator(100 + s))[0]`` for ``s`` in
        ``range(10)`` (the noise is drawn with seed 0, so the probes start at 100),
        ``frozen`` the gradient-descent filter at ``t = 50`` (``lr = 1/lambda_max``) with
        the exact NTK of ``y32`` built once: the noisy 32 x 32 camera image, noise seed 0.
    df_exact : float
        The exact divergence of that frozen (linear) filter.
    shrink : float
        The factor by which averaging 16 probes divides the estimates' standard deviation,
        in expectation.

    Raises
    ------
    ExerciseFailed
        When the estimates differ from those recomputed here, ``df_exact`` from the trace
        of the filter (:func:`ntkutils.spectral.degrees_of_freedom`) by more than 1e-6
        relative, or ``shrink`` from the factor the variance of a mean of independent
        probes gives.

    Notes
    -----
    For a linear filter ``W``, one probe gives ``b^T W b``, whose mean is ``tr W`` and
    whose variance is ``2 ||W||_F^2`` (symmetric ``W``); the mean of ``k`` independent
    probes has ``1/k`` of that variance, so its standard deviation is divided by
    ``sqrt(k)``.

    Examples
    --------
    >>> from ntkutils.stopping import degrees_of_freedom_mc
    >>> frozen, y, lam, lr = _ch5_frozen_filter()
    >>> runs = lambda k: [float(degrees_of_freedom_mc(
    ...     frozen, y, n_probes=k, generator=torch.Generator().manual_seed(100 + s))[0])
    ...     for s in range(10)]
    >>> exact = float(degrees_of_freedom(lam, [50], lr=lr)[0])
    >>> check_ch5_probe_spread(runs, exact, 4)
    Exercise 5.6: correct (1 and 16 probes on 10 seeds, exact divergence, shrink factor).
    """
    ex = "Exercise 5.6"
    frozen, y, lam, lr = _ch5_frozen_filter()
    for k in (1, 16):
        got = _call(ex, df_runs, k)
        try:
            got = torch.as_tensor([float(v) for v in got], dtype=torch.float64)
        except (TypeError, ValueError):
            _fail(ex, f"df_runs({k}): a list of 10 numbers", _shown_answer(got),
                  "return a list with one float per seed s in range(10)")
        ref = torch.as_tensor([float(degrees_of_freedom_mc(
            frozen, y, n_probes=k, generator=torch.Generator().manual_seed(100 + s))[0])
            for s in range(10)], dtype=torch.float64)
        _compare(ex, got, ref, 1e-6, 1e-9,
                 f"df_runs({k}): draw the probes of seed s with generator(100 + s), pass "
                 f"n_probes={k} to degrees_of_freedom_mc, and freeze the kernel: build it "
                 "once from y32, outside the function the probes perturb")
    exact = float(degrees_of_freedom(lam, [50], lr=lr)[0])
    got = _number(ex, df_exact, "df_exact, a number", "set df_exact to a float",
                  show="{type} {value!r}")
    if not abs(got - exact) <= 1e-6 * abs(exact):
        _fail(ex, "df_exact, the exact divergence of the frozen filter",
              f"{got:.6g}: {_miss(got, exact)}",
              "for a linear filter z = W y the divergence is the trace of W: in the "
              "kernel's eigenbasis, the sum of the gains 1 - (1 - lr lambda_i)^t "
              "(a mean of probes only estimates it)")
    factor = _number(ex, shrink, "shrink, a number", "set shrink to a float",
                     show="{type} {value!r}")
    if not abs(factor - 4.0) <= 0.05:
        hint = ("the spread is a standard deviation: averaging k independent probes "
                "divides the VARIANCE by k" if abs(factor - 16.0) <= 0.5 else
                "ten seeds only estimate the ratio of the spreads; what does averaging k "
                "independent estimates do to their variance, and so to their standard "
                "deviation?")
        _fail(ex, "shrink, the expected factor on the standard deviation for 16 probes",
              f"{factor!r}: {_miss(factor, 4.0)}", hint)
    _passed(ex, "1 and 16 probes on 10 seeds, exact divergence, shrink factor")
