"""Transient analysis: MNA, Newton, the DC operating point, the stepper, `simulate` and the
time-reversed replay."""
