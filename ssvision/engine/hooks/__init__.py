from .bn_recalibration_hook import BNRecalibrationHook, recalibrate_bn
from .class_names_hook import ClassNamesHook
from .ema_teacher_hook import EMATeacherHook, ema_momentum, ema_update
from .health_alarm_hook import HealthAlarmHook
from .resume_state_hook import ResumeStateHook
from .selection_stats_hook import SelectionStatsHook

__all__ = ['BNRecalibrationHook', 'ClassNamesHook', 'EMATeacherHook', 'HealthAlarmHook',
           'ResumeStateHook', 'SelectionStatsHook', 'ema_momentum', 'ema_update',
           'recalibrate_bn']
