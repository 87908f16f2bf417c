"""The commands besides ``bench run`` and ``bench report``, each a function first: the regression gate
(``check``: ``bench check``), the decoder fuzzer (``fuzz``: ``bench fuzz``), one image into a
bitstream file and back (``coding``: ``bench encode``/``bench decode``). A plugin's own commands
(``bench weights fetch``, ``bench shm build``, ``bench vtm build``) live in its folder."""
