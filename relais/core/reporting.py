"""An exception reporter filter that keeps personal data out of error pages and reports."""

from __future__ import annotations

from typing import Any

from django.views.debug import SafeExceptionReporterFilter


class NoPersonalDataExceptionFilter(SafeExceptionReporterFilter):
    def get_post_parameters(self, request: Any) -> dict[str, str]:
        if request is None:
            return {}
        return {key: self.cleansed_substitute for key in request.POST}

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        return [(name, self.cleansed_substitute) for name in tb_frame.f_locals]
