namespace ResidualLab;

/// <summary>A user's configuration or input is wrong; the message says what, where and how to fix it.</summary>
public class ConfigException(string message) : Exception(message);
