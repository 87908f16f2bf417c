"""Running a benchmark: what one ``bench run`` does (``config``), its job list and time estimate
(``planning``), the jobs and their execution in this process or a pool (``runner``) and on a Dask
cluster (``distributed``)."""
