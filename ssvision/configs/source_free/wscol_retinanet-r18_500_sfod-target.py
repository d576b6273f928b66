_base_ = ['./meanteacher_retinanet-r18_500_sfod-target.py']
# Source-free adaptation with WSCoL's weak-to-strong instance contrast on top of the mean
# teacher (WeakStrongContrastHead): the student's strong-view features of each pseudo-box
# are pulled toward the teacher's weak-view features of its class, away from the other
# classes and from background boxes.
model = dict(aux_heads=[dict(type='WeakStrongContrastHead', loss_weight=0.1)])
