"""The analysis stage (internal; the public entry point is dr_inspect.verify):

    paths.analyse_paths      capture set on disk -> decode (decode.pointset) -> pipeline
    pipeline.analyse_packets decoded packets -> correlation -> points table -> rules -> Analysis
    correlation.correlate    packets -> topology, hops, the rule tables (threads, heap trimming)
    ladder.build_ladder      a view over an Analysis: one connection across the points
"""
