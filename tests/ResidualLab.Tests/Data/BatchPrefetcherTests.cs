using System.Diagnostics;
using ResidualLab.Data;

namespace ResidualLab.Tests.Data;

public class BatchPrefetcherTests
{
    [Fact]
    public void Prefetched_token_batches_are_the_synchronous_sequence()
    {
        var tokens = Enumerable.Range(0, 5000).Select(i => i * 7 % 97).ToArray();
        var synchronous = new TokenBatcher(tokens, 8, 16, 42);
        var sampler = new TokenBatcher(tokens, 8, 16, 42);
        using var prefetched = new BatchPrefetcher<TokenBatch>(sampler.Copy().NextBatch);
        for (int i = 0; i < 200; i++)
        {
            var expected = synchronous.NextBatch();
            var batch = prefetched.Take();
            Assert.Equal(expected.Inputs, batch.Inputs);
            Assert.Equal(expected.Targets, batch.Targets);
            Assert.Equal(synchronous.State, batch.StateAfter);
        }
        Assert.Equal(42UL, sampler.State); // the copy drew the batches; the original has not moved
    }

    [Fact]
    public void A_sampler_restored_to_a_batchs_state_continues_after_that_batch()
    {
        var tokens = Enumerable.Range(0, 5000).Select(i => i % 89).ToArray();
        var straight = new TokenBatcher(tokens, 4, 32, 9);
        var ahead = new TokenBatcher(tokens, 4, 32, 9);
        TokenBatch third;
        using (var prefetched = new BatchPrefetcher<TokenBatch>(ahead.Copy().NextBatch))
        {
            prefetched.Take();
            prefetched.Take();
            third = prefetched.Take();
        }
        for (int i = 0; i < 3; i++) straight.NextBatch();
        var resumed = new TokenBatcher(tokens, 4, 32, 0) { State = third.StateAfter };
        Assert.Equal(straight.NextBatch().Inputs, resumed.NextBatch().Inputs);
    }

    [Fact]
    public void Prefetched_image_batches_are_the_synchronous_sequence_across_epochs()
    {
        var set = ImageSets.FromFolder("toy", IdxTests.WriteSet(trainCount: 20, testCount: 4, size: 8));
        var synchronous = new ImageBatcher(set, set.Train, batchSize: 6, seed: 11, cropPadding: 2);
        using var prefetched = new BatchPrefetcher<ImageBatch>(new ImageBatcher(set, set.Train, batchSize: 6, seed: 11, cropPadding: 2).NextBatch);
        for (int i = 0; i < 12; i++) // three batches per epoch: four epochs
        {
            var expected = synchronous.NextBatch();
            var batch = prefetched.Take();
            Assert.Equal(expected.Images, batch.Images);
            Assert.Equal(expected.Labels, batch.Labels);
            Assert.Equal(i / 3, batch.Epoch);
        }
    }

    [Fact]
    public void An_exception_in_the_source_is_rethrown_on_the_taking_thread()
    {
        int made = 0;
        using var prefetcher = new BatchPrefetcher<int[]>(() =>
            ++made <= 2 ? [made] : throw new InvalidDataException("corrupt shard 3"));
        Assert.Equal([1], prefetcher.Take());
        Assert.Equal([2], prefetcher.Take());
        Assert.Equal("corrupt shard 3", Assert.Throws<InvalidDataException>(prefetcher.Take).Message);
        Assert.Equal("corrupt shard 3", Assert.Throws<InvalidDataException>(prefetcher.Take).Message); // and again
    }

    [Fact]
    public void The_source_runs_at_most_two_batches_ahead_and_dispose_ends_its_thread()
    {
        int made = 0;
        Thread? producer = null;
        var prefetcher = new BatchPrefetcher<int[]>(() =>
        {
            producer = Thread.CurrentThread;
            return [Interlocked.Increment(ref made)];
        });
        WaitFor(() => Volatile.Read(ref made) == 2);
        Thread.Sleep(200);
        Assert.Equal(2, Volatile.Read(ref made)); // one in the queue, one waiting to go in
        Assert.Equal([1], prefetcher.Take());
        WaitFor(() => Volatile.Read(ref made) == 3);
        Assert.NotSame(Thread.CurrentThread, producer);

        prefetcher.Dispose();
        Assert.False(producer!.IsAlive);
        Assert.Throws<ObjectDisposedException>(prefetcher.Take);
    }

    static void WaitFor(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "the producer did not get there in 10 s");
            Thread.Sleep(1);
        }
    }
}
