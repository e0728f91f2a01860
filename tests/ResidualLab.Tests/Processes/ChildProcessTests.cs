using System.ComponentModel;
using ResidualLab.Processes;

namespace ResidualLab.Tests.Processes;

public class ChildProcessTests
{
    [Fact]
    public void Returns_exit_code_stdout_and_stderr()
    {
        var child = ChildProcess.Run("bash", ["-c", "echo out; echo first >&2; echo last >&2; exit 3"]);
        Assert.Equal(3, child.ExitCode);
        Assert.Equal("out\n", child.StdOut);
        Assert.Equal("first\nlast\n", child.StdErr);
        Assert.Equal("last", child.LastErrorLine);
        Assert.False(child.TimedOut);
    }

    [Fact]
    public void Arguments_reach_the_program_unquoted()
    {
        string[] words = ["two words", "it's", "$HOME", "a\"b", ""];
        var child = ChildProcess.Run("bash", ["-c", "printf '<%s>' \"$@\"", "bash", .. words]);
        Assert.Equal(string.Concat(words.Select(w => $"<{w}>")), child.StdOut);
    }

    [Fact]
    public void Full_pipes_on_both_streams_do_not_stall_the_child()
    {
        // 1 MB to each stream, stderr first: far more than a pipe holds, so reading one stream
        // to its end before the other would wait for ever.
        var child = ChildProcess.Run("bash", ["-c", "head -c 1000000 /dev/zero | tr '\\0' e >&2; head -c 1000000 /dev/zero | tr '\\0' o"],
            TimeSpan.FromMinutes(2));
        Assert.False(child.TimedOut);
        Assert.Equal(1000000, child.StdErr.Length);
        Assert.Equal(1000000, child.StdOut.Length);
    }

    [Fact]
    public void Sees_each_output_line_and_keeps_it()
    {
        var seen = new List<string>();
        var child = ChildProcess.Run("bash", ["-c", "echo a; echo b; echo c"], onOutputLine: seen.Add);
        Assert.Equal(["a", "b", "c"], seen);
        Assert.Equal("a\nb\nc\n", child.StdOut);
    }

    [Fact]
    public void Sets_and_removes_environment_variables()
    {
        var child = ChildProcess.Run("bash", ["-c", "echo \"$RESLAB_TEST_A|${HOME-removed}\""],
            environment: [KeyValuePair.Create("RESLAB_TEST_A", (string?)"set"), KeyValuePair.Create("HOME", (string?)null)]);
        Assert.Equal("set|removed\n", child.StdOut);
    }

    [Fact]
    public void Runs_in_the_working_directory()
    {
        string dir = TestSupport.TempDir();
        var child = ChildProcess.Run("pwd", [], workingDirectory: dir);
        Assert.Equal(Path.GetFullPath(dir), child.StdOut.Trim());
    }

    [Fact]
    public void A_timeout_kills_the_whole_process_tree()
    {
        // The background sleep holds stdout open: were it left alive, reading stdout would not end.
        var child = ChildProcess.Run("bash", ["-c", "sleep 600 & echo $!; wait"], TimeSpan.FromSeconds(1));
        Assert.True(child.TimedOut);
        int grandchild = int.Parse(child.StdOut.Trim(), System.Globalization.CultureInfo.InvariantCulture);
        string stat = Path.Combine("/proc", grandchild.ToString(System.Globalization.CultureInfo.InvariantCulture), "stat");
        // Gone, or a zombie waiting for its new parent to reap it.
        Assert.True(!File.Exists(stat) || File.ReadAllText(stat).Split(' ')[2] == "Z", $"process {grandchild} outlived the timeout");
    }

    [Fact]
    public void A_missing_program_is_a_Win32Exception()
    {
        Assert.Throws<Win32Exception>(() => ChildProcess.Run("reslab-no-such-program", []));
    }
}
