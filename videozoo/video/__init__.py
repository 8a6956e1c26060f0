"""The video side: reading files (:mod:`~videozoo.video.io`, PyAV), which frames a recipe takes
(:mod:`~videozoo.video.sampling`), windows over long videos (:mod:`~videozoo.video.windows`) and the
published preprocessing presets (:mod:`~videozoo.video.transforms`).

Importing this package imports none of them: the model families import the presets alone, without
PyAV.
"""
