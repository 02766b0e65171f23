"""Example workloads for htcgrid."""
