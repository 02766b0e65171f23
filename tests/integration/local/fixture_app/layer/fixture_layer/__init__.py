"""Fixture layer: proves a function can import its layer's code under the local grid."""

MARKER = "fixture-layer"
