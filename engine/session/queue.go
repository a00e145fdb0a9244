package session

import "sync"

// maxQueueItems bounds the items a session's queue holds (about 3 min of
// 25 fps video with audio); the byte budgets usually bind first.
const maxQueueItems = 16384

// itemQueue is the queue between a session's network side and its write
// loop. Unlike a buffered channel it holds memory only for what it holds:
// a channel of 16384 items took 1.7 MB per stream up front (72 % of the
// heap of a node recording 20 cameras), while a disk stall's memory
// should be taken when the stall comes. Push never blocks: the producer
// checks len against maxQueueItems and the byte budgets before pushing a
// frame.
type itemQueue struct {
	mu     sync.Mutex
	items  []item
	head   int
	closed bool
	ready  chan struct{} // one token: items were pushed, or the queue closed
}

func newItemQueue() *itemQueue { return &itemQueue{ready: make(chan struct{}, 1)} }

func (q *itemQueue) push(it item) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// len is the number of items queued.
func (q *itemQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// close ends the queue: pop returns what is left, then false.
func (q *itemQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop returns the oldest item, waiting for one; false once the queue is
// closed and empty.
func (q *itemQueue) pop() (item, bool) {
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			it := q.items[q.head]
			q.items[q.head] = item{} // let the payload go
			q.head++
			if q.head == len(q.items) {
				// Empty: start over, and give back a buffer a stall grew.
				if cap(q.items) > 256 {
					q.items = nil
				} else {
					q.items = q.items[:0]
				}
				q.head = 0
			}
			q.mu.Unlock()
			return it, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return item{}, false
		}
		<-q.ready
	}
}
