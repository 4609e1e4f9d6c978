"""Training: the step, its state, the loop's parts.

train (train_and_evaluate and the jitted step), train_state (model, optimizer and EMA by
name), experiment (what a run builds before its first step), stages, balancing (task
loss weights), early_stopping, metric_window, preemption, checkpoint (Orbax), optim.
"""
