"""Published reference results with their citations (installed as ``bench.anchors``)."""
