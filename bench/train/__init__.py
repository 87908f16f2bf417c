"""Training commands for bench's learned codecs (``python -m bench.train …``)."""
