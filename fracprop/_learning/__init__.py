"""Learning on transient circuits: the estimator interface, `LearningProblem`, the
estimators, named networks and multi-device helpers."""
