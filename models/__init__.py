"""LSTM forecasters: causal windows and scalers, the network, the training loop, metrics,
plain-file versions and the MLflow model registry.

It never imports backtrader: strategies receive predictions through the signal-provider
interface described in ../shared/docs/DESIGN.md.
"""
