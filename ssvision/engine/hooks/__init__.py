from .ema_teacher_hook import EMATeacherHook, ema_momentum, ema_update
from .resume_state_hook import ResumeStateHook
from .selection_stats_hook import SelectionStatsHook

__all__ = ['EMATeacherHook', 'ResumeStateHook', 'SelectionStatsHook', 'ema_momentum', 'ema_update']
