"""Fine-tuning marketplace: datasets, tasks, training worker, sealed deliverables."""
