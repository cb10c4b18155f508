"""Every benchmark, each a module that measures and returns rows (the `effdl-ros bench ...` command in
effdl_ros/cli prints the table and writes the JSON): transport, energy (closed loop, accountant), ddi,
segmentation, adaptation, training (E2-Train, Early-Bird), dlbench (+ own_models, workload), budget
loop, replay, compare (host vs container) and report."""
