"""A resumable parameter sweep on htcgrid: the damped driven pendulum over a grid of drive
amplitudes and frequencies, a batch of grid points per task.

``definition`` says what the sweep is (and so its session id and each batch's submission
token), ``model`` integrates a batch of points, ``handler`` is the agents' entry point,
``table`` turns results into a Parquet file and a plot, and ``client`` (``python -m
htcgrid_sweep``) submits what is not done yet and gathers the rest.
"""
