from rest_framework.routers import SimpleRouter

from scheduling.api import schedules, shifts, views

router = SimpleRouter(trailing_slash=True)
router.register("stations", views.StationViewSet, basename="station")
router.register("shifts", shifts.ShiftViewSet, basename="shift")
router.register("schedules", schedules.ScheduleViewSet, basename="schedule")
router.register("holiday-calendars", schedules.HolidayCalendarViewSet, basename="holiday-calendar")
router.register("holidays", schedules.HolidayViewSet, basename="holiday")
router.register("roster", schedules.RosterViewSet, basename="roster")

organization_urlpatterns = router.urls
