"""Weights for the small model: ncnn import, the exact x4 -> x2 head, width/depth transfer and refit.

Modules (import the one you need; each but precheck imports torch):
  precheck     is a file a PyTorch checkpoint at all (standard library only, for the handlers)
  ncnn_import  read an ncnn SRVGGNetCompact (.param + .bin) into a basicsr state dict
  heads        exact x4 -> x2 (or any r -> r/f) head by averaging sub-pixel filters
  transfer     top-k L2 channel pruning + deepening (duplicate or identity blocks), with a report
  refit        ridge least-squares refit of pruned layers on calibration patches (channel pruning
               with reconstruction, He et al. 2017 / ThiNet)
  run          the transfer as one entry point (a job function): checks, transfer, validation, report
"""
