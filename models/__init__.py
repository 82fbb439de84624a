"""LSTM forecasters, training and the model registry.

This package is filled by the models issue (PyTorch LSTM, causal windows, training loop,
MLflow registry). It must never import backtrader: strategies receive predictions through the
signal-provider interface described in ../shared/docs/DESIGN.md.
"""
