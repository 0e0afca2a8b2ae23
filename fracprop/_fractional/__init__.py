"""Fractional calculus: convolution-quadrature kernels, Lubich starting weights, history
backends and the scalar linear FDE solver."""
