"""The columnar toolkit: what topology learning and the rule tables do to numpy/pandas columns.

ids       hashing rows and numbering the hashes (the one factorizer, its C kernel _hashids.c)
pack      packing integer columns into one exact int64 key (one span per kind of value)
codes     integer codes of text columns (categoricals' own codes, shared category lists)
text      text columns of the rule tables as Categoricals ('' for missing)
plain     plain numpy/object columns from the packets table's nullable and categorical ones
group     reductions per group of integer ids, and the nearest-in-time join by key
addresses endpoint texts ('ip:port', 5-tuples) rendered once per distinct value, MAC kinds
tcp_view  the TCP view of the packets table, its packet keys and ids

It depends on nothing of dr_inspect above the decoder's schema: topology and correlate use it.
"""
