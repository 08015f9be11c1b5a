"""Long work run as detached jobs under one lock: runs, sweeps and sensitivity maps, and the presets they start from."""
