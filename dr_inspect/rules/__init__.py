"""Rule engine: load declarative rule files (rules/*.toml) and evaluate them over the tables."""

from dr_inspect.rules.engine import evaluate_rule, evaluate_rules
from dr_inspect.rules.loader import KINDS, VARIABLES, Rule, load_rule_file, load_rules

__all__ = ["KINDS", "VARIABLES", "Rule", "evaluate_rule", "evaluate_rules", "load_rule_file",
           "load_rules"]
