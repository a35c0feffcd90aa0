// sarama_group: Go's sarama (Debian's golang-github-shopify-sarama-dev 1.22) against the Kafka
// listener, speaking Kafka 0.11 versions: a sync producer writes 300 records (acks=all), then
// a consumer group member reads all of them in order. Exits 0 when that held.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/Shopify/sarama"
)

const n = 300

type handler struct {
	got  []int
	done chan struct{}
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		v, _ := strconv.Atoi(string(m.Value))
		h.got = append(h.got, v)
		s.MarkMessage(m, "")
		if len(h.got) == n {
			close(h.done)
			return nil
		}
	}
	return nil
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "sarama_group: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	brokers := []string{os.Getenv("KAFKA_BOOTSTRAP")}
	topic := fmt.Sprintf("sarama-%d", os.Getpid())
	create := exec.Command(os.Getenv("RINGLOG"), "--brokers", os.Getenv("RINGLOG_BROKERS"),
		"topic", "create", topic, "--partitions", "1")
	if out, err := create.CombinedOutput(); err != nil {
		fail("topic create: %v: %s", err, out)
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V0_11_0_0
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		fail("producer: %v", err)
	}
	for i := 0; i < n; i++ {
		msg := &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(strconv.Itoa(i))}
		if _, _, err := p.SendMessage(msg); err != nil {
			fail("send %d: %v", i, err)
		}
	}
	p.Close()
	g, err := sarama.NewConsumerGroup(brokers, fmt.Sprintf("sg-%d", os.Getpid()), cfg)
	if err != nil {
		fail("group: %v", err)
	}
	h := &handler{done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	go func() {
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "consume: %v\n", err)
			}
		}
	}()
	select {
	case <-h.done:
	case <-ctx.Done():
		fail("only %d of %d records in 60 s", len(h.got), n)
	}
	cancel()
	g.Close()
	for i, v := range h.got {
		if v != i {
			fail("record %d is %d", i, v)
		}
	}
	fmt.Println("sarama ok")
}
