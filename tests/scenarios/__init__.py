"""Ground-truth scenario generator for the verifier (issue 12): random LVS-DR deployments whose
captures and correct answers are both known. See model.py for the scenario and fault catalogue,
sim.py for how the traffic is made, build.py for writing it, check.py for the comparison."""
