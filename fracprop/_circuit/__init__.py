"""Circuits: element laws, waveforms, element groups, the builder, topology checks, `Circuit`
and the SPICE netlist reader."""
