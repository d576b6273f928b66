"""Small helpers shared by the tools: packaged configs, data search paths, progress."""

from .config import PACKAGE_PREFIX, config_path, configs_dir
from .knobs import load_config
from .paths import DATA_ENV, data_dir, find_data, find_dataset, search_paths
from .progress import progress, status

__all__ = [
    'PACKAGE_PREFIX', 'config_path', 'configs_dir', 'load_config', 'DATA_ENV', 'data_dir',
    'find_data', 'find_dataset', 'search_paths', 'progress', 'status',
]
