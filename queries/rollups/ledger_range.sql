-- Fragment (a WHERE condition): one project's bucket rows of one kind for a read: whole days [dlo, dhi) from the day view, the other hours of [lo, hi) from the hour view; primary-key ranges of (project_id, view, '', kind, hour).
project_id = {project_id:String}
AND trace_id = ''
AND kind = {kind:String}
AND ((view = {day_view:String} AND hour >= {dlo:DateTime('UTC')} AND hour < {dhi:DateTime('UTC')})
     OR (view = {hour_view:String}
         AND ((hour >= {lo:DateTime('UTC')} AND hour < {dlo:DateTime('UTC')})
              OR (hour >= {dhi:DateTime('UTC')} AND hour < {hi:DateTime('UTC')}))))
