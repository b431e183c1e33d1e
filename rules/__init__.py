"""The DR rule catalogue (data). Installed as dr_inspect.catalogue."""
