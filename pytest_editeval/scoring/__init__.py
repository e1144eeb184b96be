"""Scoring, pure where it can be: a row's questions to the judge and back (`evaluation`), the per-row record
(`verdict`), aggregates, the threshold gate, the comparison with a baseline, the judge's noise, cost and
agreement, and the one decision a run and a merge share (`outcome`)."""
