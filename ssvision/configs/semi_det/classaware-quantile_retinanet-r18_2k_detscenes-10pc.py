_base_ = ['./classaware_retinanet-r18_2k_detscenes-10pc.py']
# Quantile variant: each class keeps the top 30 % of its candidates (scores >= 0.02), so
# the count kept follows how many candidates the teacher emits, not how many objects
# there are (the ablation of the count prior in BENCHMARKS.md).
model = dict(selector=dict(mode='quantile', ratio=0.3))
