"""The `dask` engine of verify: the same report as the local engine, computed on a Dask cluster
(a LocalCluster by default) bucket by bucket, so a capture set larger than one machine's memory
verifies in bounded memory per worker. See engine.py for the stages."""

from dr_inspect.distributed.engine import DaskOptions, analyse_on_dask, verify_on_dask

__all__ = ["DaskOptions", "analyse_on_dask", "verify_on_dask"]
