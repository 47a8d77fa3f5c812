package main

import (
	"github.com/eventhooks/eventhooks/console"
	"github.com/eventhooks/eventhooks/deliveries"
	"github.com/eventhooks/eventhooks/hooks"
)

// deliveryLog creates the delivery log the deliveries routes and the console read, and
// the console on it. The log has a consumer of its own: reading never slows delivery.
func (s *service) deliveryLog(c *core) (*deliveries.Log, *console.Console, error) {
	conn, err := s.kafka.ClientOpts()
	if err != nil {
		return nil, nil, err
	}
	dl, err := deliveries.New(deliveries.Config{
		ClientOpts: conn, AttemptsTopic: c.topics.Attempts, DLQTopic: c.topics.DLQ,
		InputTopics: c.topics.Events, Logger: s.log,
	})
	if err != nil {
		return nil, nil, err
	}
	ui, err := console.New(console.Config{
		Hooks: func() *hooks.Snapshot { return c.store.Snapshot() }, Log: dl, Token: s.admin.AdminToken, Logger: s.log,
	})
	if err != nil {
		dl.Close()
		return nil, nil, err
	}
	return dl, ui, nil
}
