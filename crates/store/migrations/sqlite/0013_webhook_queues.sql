-- A claim takes at most a few deliveries of each webhook at a time (so one
-- slow endpoint cannot hold every slot): it reads each webhook's deliveries in
-- flight, and its oldest due ones, by its id. These two replace the queue-wide
-- index on the due time, which nothing reads any more.
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (webhook_id, next_attempt_at)
    WHERE state IN ('pending', 'delivering');
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (webhook_id, locked_until)
    WHERE state = 'delivering';
DROP INDEX webhook_deliveries_due;
