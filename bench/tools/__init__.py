"""The commands besides ``bench run`` and ``bench report``, each a function first: the regression gate
(``check``: ``bench check``), the decoder fuzzer (``fuzz``: ``bench fuzz``), one image into a
bitstream file and back (``coding``: ``bench encode``/``bench decode``) and the one download
(``fetch_weights``: ``bench weights fetch``, standard library only at import, as the command line
reads its options at start-up)."""
