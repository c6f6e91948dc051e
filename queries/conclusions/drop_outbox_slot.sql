-- Drops one closed slot of delivery_outbox: a partition drop (metadata, no mutation), replicated by a Replicated engine.
ALTER TABLE delivery_outbox DROP PARTITION {slot:DateTime('UTC')}
