"""VVC through the VTM reference software: ``vtm`` (single-layer intra, ``vtm:ctc`` in 4:2:0),
``vtm-ml`` (spatial scalability, K+1 layers in one bitstream) and ``bench vtm build``.

``plugin`` holds the codecs, ``config`` what bench tells VTM, ``build`` the build command and
``command`` its declaration for the command line."""

from bench.codecs.vtm import plugin  # noqa: F401  (registers vtm and vtm-ml)
