"""Checkers for the book's exercises, one module per chapter.

Each chapter's exercises call a checker from this package with the reader's answer.  A
checker compares the answer with an independent computation from the package and either
prints a one-line confirmation or raises :class:`ExerciseFailed` with feedback a student
can act on: what was expected, what came back, and a hint.  Checkers never return silently
on a wrong answer.

- :mod:`ntkutils.exercises._feedback`  the shared feedback, answer coercion and comparison
- :mod:`ntkutils.exercises.ch1` ... :mod:`ntkutils.exercises.ch7`  each chapter's checkers

Every checker is re-exported here, where the chapters import them from.
"""
from ._feedback import ExerciseFailed, check_value
from .ch1 import (
    check_ch1_discrepancy_stop,
    check_ch1_noisy_psnr,
    check_ch1_patience_stop,
    check_ch1_peak_step,
    check_ch1_shuffled_input,
    check_ch1_weight_count,
)
from .ch2 import (
    check_arccos_k1,
    check_error_slope,
    check_mlp_ntk,
    check_ntk_entry,
    check_patch_error,
    check_weight_change_exponents,
)
from .ch3 import (
    check_ch3_centred_input,
    check_ch3_degrees_of_freedom,
    check_ch3_noise_background,
    check_ch3_noise_level_step,
    check_ch3_permuted_kernel,
    check_ch3_sign_change_angle,
)
from .ch4 import (
    check_ch4_bias_variance,
    check_ch4_half_step,
    check_ch4_noise_prediction,
    check_ch4_oracle_step,
    check_ch4_steps_to_fit,
    check_ch4_sure,
    check_ch4_twicing,
)
from .ch5 import (
    CH5_LANDMARK_COUNTS,
    check_ch5_kernel_memory,
    check_ch5_landmarks_for_error,
    check_ch5_noise_prediction,
    check_ch5_nystrom_kernel,
    check_ch5_orthonormalise,
    check_ch5_probe_spread,
)
from .ch6 import (
    check_ch6_adam_first_step,
    check_ch6_kernel_change,
    check_ch6_norm_slopes,
    check_ch6_predict_exponent,
    check_ch6_sign_sweep,
)
from .ch7 import (
    CH7_LOW_SIGMA,
    CH7_SEEDS,
    check_ch7_clean_input,
    check_ch7_flat_psnr,
    check_ch7_noise_level,
    check_ch7_ntk_nystrom,
    check_ch7_oracle_gap,
    check_ch7_rank_agreement,
)

__all__ = [
    "ExerciseFailed", "check_value",
    # chapter 1: the deep image prior
    "check_ch1_noisy_psnr", "check_ch1_weight_count", "check_ch1_patience_stop",
    "check_ch1_discrepancy_stop", "check_ch1_peak_step", "check_ch1_shuffled_input",
    # chapter 2: the neural tangent kernel
    "check_arccos_k1", "check_ntk_entry", "check_mlp_ntk", "check_error_slope",
    "check_weight_change_exponents", "check_patch_error",
    # chapter 3: the NTK is a non-local filter
    "check_ch3_sign_change_angle", "check_ch3_permuted_kernel",
    "check_ch3_noise_background", "check_ch3_degrees_of_freedom",
    "check_ch3_noise_level_step", "check_ch3_centred_input",
    # chapter 4: training is twicing
    "check_ch4_twicing", "check_ch4_steps_to_fit", "check_ch4_bias_variance",
    "check_ch4_oracle_step", "check_ch4_sure", "check_ch4_noise_prediction",
    "check_ch4_half_step",
    # chapter 5: Nyström, the CNN without training
    "check_ch5_kernel_memory", "check_ch5_nystrom_kernel", "check_ch5_orthonormalise",
    "check_ch5_landmarks_for_error", "check_ch5_noise_prediction",
    "check_ch5_probe_spread", "CH5_LANDMARK_COUNTS",
    # chapter 6: Adam adapts the kernel
    "check_ch6_predict_exponent", "check_ch6_adam_first_step", "check_ch6_norm_slopes",
    "check_ch6_kernel_change", "check_ch6_sign_sweep",
    # chapter 7: the paper's results, reproduced
    "check_ch7_flat_psnr", "check_ch7_ntk_nystrom", "check_ch7_oracle_gap",
    "check_ch7_rank_agreement", "check_ch7_clean_input", "check_ch7_noise_level",
]
