"""From measurements to estimates: trained networks and baselines as reconstructors, tiling, the self-ensemble,
restoring the user's files and evaluating with the paper's protocol."""
