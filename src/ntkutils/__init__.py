"""ntkutils: the helper package of the course *Why a CNN trained on one noisy image denoises it*.

The course follows Tachella, Tang & Davies, "The Neural Tangent Link Between CNN Denoisers and
Non-Local Filters" (CVPR 2021).  One module per concept:

- :mod:`ntkutils.images`   load the shipped test images, add noise, PSNR
- :mod:`ntkutils.networks` the single-hidden-layer CNN, a vanilla CNN, an encoder-decoder
- :mod:`ntkutils.kernels`  the neural tangent kernel: closed form and empirical
- :mod:`ntkutils.filters`  the gradient-descent (twicing) filter, Nyström, stopping rules
- :mod:`ntkutils.denoise`  the closed-form NTK denoiser
- :mod:`ntkutils.training` fitting a network to one image with GD or Adam
- :mod:`ntkutils.plotting`, :mod:`ntkutils.widgets`, :mod:`ntkutils.exercises`

Nothing runs at import.
"""
# During development each module lists its public names in ``__all__``; the
# re-exports below are explicit so a reader sees where each name lives.
