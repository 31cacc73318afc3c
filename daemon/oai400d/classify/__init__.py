"""The classifier: rule table as data, evidence parsing per log format (secrets are hidden by
masking.py)."""

from oai400d.classify.engine import Classifier, normalise
from oai400d.classify.rules import Rule, RuleTable, load_rules

__all__ = ["Classifier", "Rule", "RuleTable", "load_rules", "normalise"]
