package main

// The bench's baselines, measured on the same broker and receiver as the processor, and
// the topics of a run.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/eventhooks/eventhooks/bench"
)

// measureBaselines runs raw consume, raw HTTP and the bare pipeline on the same broker
// and target, after the processor has stopped.
func (b *benchRun) measureBaselines(ctx context.Context) error {
	c := b.cmd
	events := b.core.topics.Events[0]
	t := bench.Target{URL: b.target, Receiver: b.rcv, MaxConns: c.MaxConns}
	if c.Target != "" {
		t.Receiver = nil
	}

	b.log.Info("baseline: raw consume", "topic", events)
	freeMemory()
	res, err := bench.RawConsume(ctx, b.conn, events, c.Events)
	if err != nil {
		return err
	}
	b.report.Results = append(b.report.Results, res)
	if c.Rate > 0 {
		// The bare pipeline gets a fresh topic. An in-process broker would otherwise still
		// hold the processor's events: a bigger live heap, fewer GCs, and a p99 that does
		// not compare.
		if err := b.deleteTopics(ctx, events); err != nil {
			return err
		}
	}

	b.log.Info("baseline: raw HTTP", "requests", c.Events, "concurrency", c.MaxConns)
	freeMemory()
	if res, err = bench.RawHTTP(ctx, t, c.Events, c.MaxConns); err != nil {
		return err
	}
	b.report.Results = append(b.report.Results, res)

	freeMemory()
	var profile string
	if c.CPUProfile != "" {
		profile = c.CPUProfile + ".bare"
	}
	stopProfile, err := startCPUProfile(profile, b.log)
	if err != nil {
		return err
	}
	defer stopProfile()
	if c.Rate == 0 {
		b.log.Info("baseline: bare pipeline, draining the same backlog", "topic", events)
		res, err = bench.BarePipeline(ctx, b.conn, events, t, c.Events, c.Lanes)
	} else {
		// Same rate, same producer, a fresh topic: latencies are comparable.
		topic := b.prefix + "baseline"
		if err := b.createTopic(ctx, topic); err != nil {
			return err
		}
		b.log.Info("baseline: bare pipeline, producer and pipeline concurrently", "topic", topic, "rate", c.Rate)
		prodE := make(chan error, 1)
		go func() {
			_, err := bench.Produce(ctx, b.prodCl, topic, c.Events, c.Keys, c.Size, c.Rate)
			prodE <- err
		}()
		res, err = bench.BarePipeline(ctx, b.conn, topic, t, c.Events, c.Lanes)
		if perr := <-prodE; perr != nil && err == nil {
			err = perr
		}
	}
	stopProfile()
	if err != nil {
		return err
	}
	b.report.Results = append(b.report.Results, res)
	return nil
}

func (b *benchRun) createTopic(ctx context.Context, topic string) error {
	resp, err := b.adm.CreateTopic(ctx, b.cmd.Partitions, -1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

func (b *benchRun) deleteTopics(ctx context.Context, topics ...string) error {
	resps, err := b.adm.DeleteTopics(ctx, topics...)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		return fmt.Errorf("delete topics %v: %w", topics, err)
	}
	return nil
}

// dropTopics deletes the run's topics from a broker it did not start, where they would
// otherwise stay.
func (b *benchRun) dropTopics() {
	if b.emb != nil || b.adm == nil {
		return
	}
	b.dropPrefix(b.prefix)
}

// dropPrefix deletes the topics whose names start with prefix.
func (b *benchRun) dropPrefix(prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topics, err := b.adm.ListTopics(ctx)
	if err == nil {
		var ours []string
		for _, t := range topics.Names() {
			if strings.HasPrefix(t, prefix) {
				ours = append(ours, t)
			}
		}
		if len(ours) > 0 {
			err = b.deleteTopics(ctx, ours...)
		}
	}
	if err != nil {
		b.log.Warn("cannot delete the run's topics", "prefix", prefix, "err", err)
	}
}
