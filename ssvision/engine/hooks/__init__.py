from .ema_teacher_hook import EMATeacherHook, ema_momentum, ema_update
from .resume_state_hook import ResumeStateHook

__all__ = ['EMATeacherHook', 'ResumeStateHook', 'ema_momentum', 'ema_update']
