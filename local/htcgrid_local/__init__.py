"""htcgrid's local grid: the whole grid on one machine, provisioned from ``template.yaml``."""
